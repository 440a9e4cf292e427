"""Checkpoint and run-directory input/output."""
