"""corr_core.models."""
