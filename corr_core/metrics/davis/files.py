"""Scoring of prediction PNG folders against DAVIS-layout annotations (threaded file evaluation).

Global numbers average over objects, not sequences: ``J&F-Mean = (mean_o J_o + mean_o F_o) / 2``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from corr_core.data.davis import annotation_files, sequence_names, void_to_background
from corr_core.data.labels import read_label_png
from corr_core.errors import DataError, ShapeMismatchError
from corr_core.metrics.davis.frame import DEFAULT_BOUND_TH, score_frame
from corr_core.metrics.davis.results import DavisResults, ObjectResult, global_metrics
from corr_core.metrics.davis.sequence import check_object_count, check_policy, label_max, stats_dict

__all__ = ["evaluate_davis", "evaluate_files"]


def _read_labels(path: Path) -> np.ndarray:
    """A label PNG (palette or 8/16-bit greyscale) as the official evaluator reads it."""
    return read_label_png(path, require_palette=False)


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def evaluate_files(
    sequences: dict[str, list[Path]],
    results_dir: str | Path,
    missing_objects: str = "raise",
    bound_th: float = DEFAULT_BOUND_TH,
    workers: int | None = None,
) -> DavisResults:
    """Scores predictions ``results_dir/<seq>/<stem>.png`` against annotation files.

    Args:
        sequences: sequence name -> its sorted annotation PNGs (all frames).
        results_dir: folder with one sub-folder of palette/greyscale PNGs per sequence, named like
            the annotations; the first and last frame's predictions are not read.
        missing_objects: see :func:`evaluate_sequence`.
        bound_th: boundary tolerance.
        workers: threads reading and scoring frames (default: up to 4, the CPU count).

    Returns:
        :class:`DavisResults` with per-object and global metrics.

    Raises:
        DataError: a prediction PNG is missing or unreadable (the message names it).
        ShapeMismatchError: frame sizes or object ids disagree (the message names the sequence).
    """
    check_policy(missing_objects)
    results_dir = Path(results_dir)
    start = time.perf_counter()
    workers = workers or _default_workers()
    tasks = []  # (sequence, column, gt path, pred path, n_gt)
    n_objects: dict[str, int] = {}
    frame_ids: dict[str, list[str]] = {}
    for seq, files in sequences.items():
        n_objects[seq] = label_max(void_to_background(_read_labels(files[0])))
        evaluated = files[1:-1]
        frame_ids[seq] = [p.stem for p in evaluated]
        for col, gt_path in enumerate(evaluated):
            tasks.append((seq, col, gt_path, results_dir / seq / f"{gt_path.stem}.png", n_objects[seq]))

    def run(task):
        seq, col, gt_path, pred_path, n_gt = task
        if not pred_path.is_file():
            raise DataError(f"sequence {seq!r}: prediction {pred_path} is missing")
        gt = void_to_background(_read_labels(gt_path))
        pred = _read_labels(pred_path)
        if pred.shape != gt.shape:
            raise ShapeMismatchError(
                f"sequence {seq!r}: prediction {pred_path} has size {pred.shape} "
                f"but the annotation {gt_path} has size {gt.shape}"
            )
        j, f = score_frame(gt, pred, n_gt, bound_th)
        return seq, col, j, f, label_max(pred)

    scores = {
        seq: (np.zeros((n, len(frame_ids[seq]))), np.zeros((n, len(frame_ids[seq]))))
        for seq, n in n_objects.items()
    }
    n_pred = dict.fromkeys(sequences, 0)
    if workers > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outputs = list(pool.map(run, tasks))
    else:
        outputs = [run(t) for t in tasks]
    for seq, col, j, f, pmax in outputs:
        scores[seq][0][:, col] = j
        scores[seq][1][:, col] = f
        n_pred[seq] = max(n_pred[seq], pmax)

    objects = []
    missing = {}
    for seq in sequences:
        check_object_count(seq, n_objects[seq], n_pred[seq], missing_objects)
        if n_pred[seq] < n_objects[seq]:
            missing[seq] = list(range(n_pred[seq] + 1, n_objects[seq] + 1))
        js, fs = scores[seq]
        for k in range(n_objects[seq]):
            objects.append(ObjectResult(seq, k + 1, frame_ids[seq], js[k], fs[k], stats_dict(js[k], fs[k])))
    return DavisResults(
        objects=objects,
        global_metrics=global_metrics(objects),
        sequences=list(sequences),
        n_frames=len(tasks),
        seconds=time.perf_counter() - start,
        predicted_objects=n_pred,
        missing_objects=missing,
    )


def evaluate_davis(
    davis_root: str | Path,
    results_dir: str | Path,
    split: str | Path | None = None,
    sequences: Iterable[str] | None = None,
    resolution: str = "480p",
    year: str = "2016",
    missing_objects: str = "raise",
    bound_th: float = DEFAULT_BOUND_TH,
    workers: int | None = None,
) -> DavisResults:
    """Scores a folder of predictions on a DAVIS-layout set (official semi-supervised protocol).

    Args:
        davis_root: folder with ``Annotations/<resolution>/<seq>/*.png`` (and ``ImageSets``).
        results_dir: predictions as ``<results_dir>/<seq>/<frame>.png`` label PNGs.
        split: split name (``dev480p``, ``train``, ``val`` -> ``ImageSets/<year>/<name>.txt``) or a
            split file; ignored when ``sequences`` is given; all annotated sequences when both are
            None.
        sequences: explicit sequence names.
        resolution: annotation resolution folder (``480p``, ``240p``, ``Full-Resolution``).
        year: ``ImageSets`` year tried first when resolving a split name.
        missing_objects: ``"raise"`` (official) or ``"empty"``; see :func:`evaluate_sequence`.
        bound_th: boundary tolerance.
        workers: scoring threads.

    Returns:
        :class:`DavisResults`; ``global_metrics`` holds J&F-Mean, J-Mean, J-Recall, J-Decay,
        F-Mean, F-Recall, F-Decay averaged over objects.

    Raises:
        DataError / ShapeMismatchError: naming the file or sequence at fault.
    """
    root = Path(davis_root)
    if not root.is_dir():
        raise DataError(f"DAVIS root not found: {root}")
    if not Path(results_dir).is_dir():
        raise DataError(f"predictions folder not found: {results_dir}")
    names = sequence_names(root, split, sequences, resolution, year)
    files = {seq: annotation_files(root, seq, resolution) for seq in names}
    return evaluate_files(files, results_dir, missing_objects, bound_th, workers)
