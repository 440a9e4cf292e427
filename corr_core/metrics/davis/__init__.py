"""DAVIS video object segmentation metrics: region similarity J and boundary accuracy F.

Semantics follow the official DAVIS 2017 evaluation (``davisvideochallenge/davis2017-evaluation``,
semi-supervised task) so that the numbers are interchangeable with published ones:

* J is the Jaccard index of one object's mask; an object absent from both the annotation and the
  prediction scores 1.
* F is the F-measure of boundary precision/recall: boundaries are the one-pixel bitmap of
  ``seg2bmap``; a boundary pixel matches if the other boundary lies within a disk of radius
  ``ceil(0.008 * image diagonal)`` (8 px at 480p). Both boundaries empty -> 1, one empty -> 0.
* Per object the per-frame values give Mean, Recall (fraction > 0.5) and Decay (mean of the first
  quarter minus mean of the last quarter, the official overlapping quarters).
* Objects are the ids ``1..max(first annotation frame)``; the first and last frames are not scored;
  annotation value 255 (void, :data:`corr_core.data.davis.VOID_ID`) counts as background, as in the
  official reader. Predictions must use exactly these ids: an id above the object count is an
  error (the official script exits); a prediction that never shows the highest id is an error too
  unless ``missing_objects="empty"``.
* Global numbers average over objects, not sequences: ``J&F-Mean = (mean_o J_o + mean_o F_o) / 2``.

One job per module:

* :mod:`~corr_core.metrics.davis.frame`: per-frame J/F kernels (``db_eval_iou``, ``f_measure``,
  ``seg2bmap``, ``score_frame``);
* :mod:`~corr_core.metrics.davis.sequence`: per-object statistics of a sequence
  (``db_statistics``, ``evaluate_sequence``);
* :mod:`~corr_core.metrics.davis.results`: :class:`DavisResults` (tables, CSV, JSON);
* :mod:`~corr_core.metrics.davis.files`: scoring prediction folders against a DAVIS layout
  (``evaluate_davis``, ``evaluate_files``, threaded).

The DAVIS layout (split files, annotation lists, the void id) is read by
:mod:`corr_core.data.davis`, label PNGs by :mod:`corr_core.data.labels`; both are re-exported here
under the names this module always had.
"""

from corr_core.data.davis import VOID_ID, annotation_files, read_split, resolve_split
from corr_core.metrics.davis.files import evaluate_davis, evaluate_files
from corr_core.metrics.davis.frame import (
    DEFAULT_BOUND_TH,
    db_eval_boundary,
    db_eval_iou,
    disk,
    f_measure,
    score_frame,
    seg2bmap,
)
from corr_core.metrics.davis.results import (
    GLOBAL_KEYS,
    OBJECT_KEYS,
    DavisResults,
    ObjectResult,
    Results,
    global_metrics,
)
from corr_core.metrics.davis.sequence import MISSING_OBJECT_POLICIES, db_statistics, evaluate_sequence

#: The void label of DAVIS annotations (the same object as :data:`corr_core.data.davis.VOID_ID`).
VOID_LABEL = VOID_ID

__all__ = [
    "DEFAULT_BOUND_TH",
    "GLOBAL_KEYS",
    "MISSING_OBJECT_POLICIES",
    "OBJECT_KEYS",
    "VOID_LABEL",
    "DavisResults",
    "ObjectResult",
    "Results",
    "annotation_files",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "disk",
    "evaluate_davis",
    "evaluate_files",
    "evaluate_sequence",
    "f_measure",
    "global_metrics",
    "read_split",
    "resolve_split",
    "score_frame",
    "seg2bmap",
]
