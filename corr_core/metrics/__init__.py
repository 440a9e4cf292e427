"""corr_core.metrics: the field's metrics, numerically identical to the official implementations."""

from corr_core.metrics.davis import (
    GLOBAL_KEYS,
    DavisResults,
    ObjectResult,
    Results,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    evaluate_davis,
    evaluate_sequence,
    f_measure,
    seg2bmap,
)
from corr_core.metrics.features import effective_rank

__all__ = [
    "GLOBAL_KEYS",
    "DavisResults",
    "ObjectResult",
    "Results",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "evaluate_davis",
    "effective_rank",
    "evaluate_sequence",
    "f_measure",
    "seg2bmap",
]
