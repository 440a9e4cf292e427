"""corr_core.methods."""
