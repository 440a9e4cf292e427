"""corr_core.io."""
