"""Evaluation protocols that run corr models on benchmark data and score them."""

from corr_core.evaluation.vos import format_summary, run_vos, score_predictions, write_reports

__all__ = ["format_summary", "run_vos", "score_predictions", "write_reports"]
