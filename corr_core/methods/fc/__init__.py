"""corr_core.methods.fc."""
