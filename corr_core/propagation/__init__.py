"""corr_core.propagation."""
