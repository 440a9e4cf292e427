"""corr_core.train."""
