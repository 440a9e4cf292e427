"""Evaluation protocols that run corr models on benchmark data and score them."""

from corr_core.evaluation.egoexo import run_egoexo_pairs
from corr_core.evaluation.jhmdb import run_jhmdb
from corr_core.evaluation.vip import run_vip
from corr_core.evaluation.vos import format_summary, json_ready, run_vos, score_predictions, write_reports

__all__ = ["format_summary", "json_ready", "run_egoexo_pairs", "run_jhmdb", "run_vip", "run_vos",
           "score_predictions", "write_reports"]
