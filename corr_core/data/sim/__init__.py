"""corr_core.data.sim."""
