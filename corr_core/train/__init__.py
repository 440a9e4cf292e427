"""Training: one trainer for every method."""
