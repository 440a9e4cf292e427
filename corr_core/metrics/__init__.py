"""corr_core.metrics: the field's metrics, numerically identical to the official implementations.

Importing this package does not import torch: :func:`effective_rank` (the one torch metric) is
loaded on first use.
"""

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name == "effective_rank":
        from corr_core.metrics.features import effective_rank

        return effective_rank
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
