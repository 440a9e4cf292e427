"""corr_core.metrics."""
