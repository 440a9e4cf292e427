"""corr_core.commands."""
