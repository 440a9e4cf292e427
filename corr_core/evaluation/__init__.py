"""Evaluation protocols that run corr models on benchmark data and score them.

* :mod:`~corr_core.evaluation.vos` -- DAVIS semi-supervised VOS (J&F);
* :mod:`~corr_core.evaluation.jhmdb` -- JHMDB keypoint propagation (PCK);
* :mod:`~corr_core.evaluation.vip` -- VIP part propagation (mIoU);
* :mod:`~corr_core.evaluation.egoexo` -- EgoExo4D correspondence scoring.

They share one tracker protocol (:mod:`~corr_core.evaluation.protocol`), one frame reader
(:mod:`~corr_core.evaluation.frames`) and one set of report writers
(:mod:`~corr_core.evaluation.reports`).
"""

from corr_core.evaluation.egoexo import run_egoexo_pairs
from corr_core.evaluation.jhmdb import run_jhmdb
from corr_core.evaluation.protocol import LabelTracker, SoftLabelTracker, TrackerFactory
from corr_core.evaluation.reports import json_ready
from corr_core.evaluation.vip import run_vip
from corr_core.evaluation.vos import format_summary, run_vos, score_predictions, write_reports

__all__ = [
    "LabelTracker",
    "SoftLabelTracker",
    "TrackerFactory",
    "format_summary",
    "json_ready",
    "run_egoexo_pairs",
    "run_jhmdb",
    "run_vip",
    "run_vos",
    "score_predictions",
    "write_reports",
]
