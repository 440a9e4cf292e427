"""Scoring of ego <-> exo object correspondences (the EgoExo4D correspondence benchmark metrics).

:func:`run_egoexo_pairs` reads predictions in our pairs-JSON format
(:func:`corr_core.metrics.egoexo.load_pairs_json`: one item per take, object, target camera and
frame, with the ground-truth and predicted masks as PNG paths and an existence confidence) and
scores each direction present (``ego-exo`` and ``exo-ego``) separately with
:class:`~corr_core.metrics.egoexo.EgoExoEvaluator`, as the benchmark reports them. Predicting the
correspondences is not done here; this only scores.

Outputs in ``out_dir``::

    items.csv      direction, take, object, camera, frame, gt_exists, pred_exists, iou,
                   contour_accuracy, location_error (blank where the object does not exist)
    summary.csv    one row per direction: iou, contour_accuracy, location_error,
                   balanced_accuracy, tpr, tnr, n_items, n_exist
    metrics.json   ``global`` (``<direction>/<metric>`` for every direction), one entry per
                   direction, the pairs file, a timestamp
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from corr_core.data.labels import read_label_png
from corr_core.errors import DataError
from corr_core.evaluation.reports import json_ready, timestamp, write_csv, write_json
from corr_core.metrics.egoexo import CONF_THRESH, EgoExoEvaluator, load_pairs_json

__all__ = ["DIRECTIONS", "GLOBAL_METRICS", "format_egoexo_summary", "run_egoexo_pairs"]

DIRECTIONS = ("ego-exo", "exo-ego")
#: Metrics of each direction reported in ``global`` (location_error: lower is better).
GLOBAL_METRICS = ("iou", "contour_accuracy", "location_error", "balanced_accuracy")
_SUMMARY_KEYS = (
    "iou",
    "contour_accuracy",
    "location_error",
    "balanced_accuracy",
    "tpr",
    "tnr",
    "n_items",
    "n_exist",
)
_ITEM_SCORES = ("gt_exists", "pred_exists", "iou", "contour_accuracy", "location_error")


def _read_mask(path: Path | None, json_path: Path) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return read_label_png(path, require_palette=False) != 0
    except DataError as exc:
        raise DataError(f"{json_path}: {exc}") from exc


def format_egoexo_summary(metrics: dict) -> str:
    """Plain-text table of an EgoExo ``metrics.json`` dictionary: one row per direction."""
    keys = ("iou", "contour_accuracy", "location_error", "balanced_accuracy", "n_items")
    lines = [f"{'direction':<10}" + "".join(f"{k:>19}" for k in keys)]
    for d in DIRECTIONS:
        if d not in metrics:
            continue
        vals = []
        for k in keys:
            v = metrics[d].get(k)
            vals.append(f"{v:>19.4f}" if isinstance(v, (int, float)) else f"{'nan':>19}")
        lines.append(f"{d:<10}" + "".join(vals))
    return "\n".join(lines)


def run_egoexo_pairs(
    pairs_json: str | Path,
    out_dir: str | Path,
    conf_thresh: float = CONF_THRESH,
    require_both: bool = False,
    extra: dict | None = None,
) -> dict:
    """Scores every direction of a pairs JSON and writes the reports (module docstring).

    Args:
        pairs_json: our correspondence JSON (:func:`~corr_core.metrics.egoexo.load_pairs_json`).
        out_dir: output folder (created).
        conf_thresh: an object is predicted to exist when its confidence is above this (0.5).
        require_both: refuse a file that lacks one of the two directions.
        extra: more entries for ``metrics.json``.

    Returns:
        The ``metrics.json`` dictionary: ``global`` (``"ego-exo/iou"``, ...), ``"ego-exo"`` and/or
        ``"exo-ego"`` (:meth:`EgoExoEvaluator.summary`), ``directions``, ``pairs``, ``timestamp``.

    Raises:
        DataError: a malformed JSON (the message names the file and the entry), a missing or
            unreadable mask PNG, a duplicated item, or a missing direction with ``require_both``.
    """
    pairs_json = Path(pairs_json)
    data = load_pairs_json(pairs_json)
    if require_both:
        missing = [d for d in DIRECTIONS if d not in data]
        if missing:
            raise DataError(
                f"{pairs_json}: no {' / '.join(repr(d) for d in missing)} items (both directions required)"
            )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict] = {}
    item_rows = []
    for direction in DIRECTIONS:
        if direction not in data:
            continue
        ev = EgoExoEvaluator(conf_thresh)
        for it in data[direction]:
            scores = ev.add(
                it.take,
                it.obj,
                it.cam,
                it.frame,
                _read_mask(it.gt_mask, pairs_json),
                _read_mask(it.pred_mask, pairs_json),
                it.confidence,
            )
            flags = [int(scores["gt_exists"]), int(scores["pred_exists"])]
            values = [scores.get(k) for k in _ITEM_SCORES[2:]]
            item_rows.append([direction, it.take, it.obj, it.cam, it.frame, *flags, *values])
        summaries[direction] = ev.summary()
    metrics = {
        "protocol": "EgoExo4D ego-exo correspondence (IoU, contour accuracy, location error, balanced accuracy)",
        "timestamp": timestamp(),
        "global": {f"{d}/{k}": summaries[d][k] for d in summaries for k in GLOBAL_METRICS},
        **summaries,
        "directions": list(summaries),
        "conf_thresh": float(conf_thresh),
        "pairs": str(pairs_json),
        **(extra or {}),
    }
    metrics = json_ready(metrics)
    write_csv(out_dir / "items.csv", ["direction", "take", "object", "camera", "frame", *_ITEM_SCORES], item_rows)
    with open(out_dir / "summary.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["direction", *_SUMMARY_KEYS])
        for d, s in metrics.items():
            if d in DIRECTIONS:
                writer.writerow([d, *("" if s[k] is None else s[k] for k in _SUMMARY_KEYS)])
    write_json(out_dir / "metrics.json", metrics)
    return metrics
