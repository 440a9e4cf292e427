"""Semi-supervised video object segmentation evaluation (the DAVIS protocol of the papers).

:func:`run_vos` feeds every sequence of a DAVIS-layout set through a fresh tracker (frame 0 with
its annotation, later frames alone), writes the predictions as palette PNGs plus overlays, and
scores them with :mod:`corr_core.metrics.davis`. :func:`score_predictions` scores an existing
predictions folder. Both write::

    out_dir/per_sequence.csv   sequence, object, J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay
    out_dir/summary.csv        one row: J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay
    out_dir/metrics.json       global + per-object numbers (+ tracking speed), with a timestamp
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from corr_core.data.davis import void_to_background
from corr_core.data.labels import write_label_png
from corr_core.errors import CorrError, DataError, ShapeMismatchError
from corr_core.evaluation.protocol import LabelTracker, TrackerFactory, checked_labels
from corr_core.evaluation.reports import json_ready, log, timestamp, write_json
from corr_core.metrics.davis import GLOBAL_KEYS, DavisResults, evaluate_davis, evaluate_files
from corr_core.viz import overlay

__all__ = [
    "VosDataset",
    "VosTracker",
    "format_summary",
    "json_ready",
    "run_vos",
    "score_predictions",
    "write_reports",
]

#: The tracker :func:`run_vos` needs (the shared protocol of every evaluation; old name kept).
VosTracker = LabelTracker
_PROTOCOL = "DAVIS semi-supervised (official davis2017-evaluation semantics)"


class VosDataset(Protocol):
    """The part of :class:`corr_core.data.davis.DavisDataset` that :func:`run_vos` uses."""

    sequences: list[str]

    def frames(self, seq: str) -> list[Path]: ...

    def read_frame(self, seq: str, i: int) -> np.ndarray: ...

    def read_annotation(self, seq: str, i: int) -> np.ndarray: ...

    def annotations(self, seq: str) -> list[Path]: ...


def write_reports(results: DavisResults, out_dir: str | Path, extra: dict | None = None) -> dict:
    """Writes ``per_sequence.csv``, ``summary.csv`` and ``metrics.json`` into ``out_dir``.

    Args:
        results: scores from :func:`corr_core.metrics.davis.evaluate_davis`.
        out_dir: output folder (created).
        extra: more top-level entries for ``metrics.json`` (e.g. tracking speed, settings).

    Returns:
        The dictionary written to ``metrics.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results.write_csv(out_dir / "per_sequence.csv", out_dir / "summary.csv")
    metrics = {
        "protocol": _PROTOCOL,
        "timestamp": timestamp(),
        **results.to_dict(),
        "scoring_frames_per_second": results.n_frames / results.seconds if results.seconds > 0 else None,
        **(extra or {}),
    }
    metrics = json_ready(metrics)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def format_summary(metrics: dict) -> str:
    """Plain-text table of a ``metrics.json`` dictionary: global numbers, then one row per object."""

    def num(x: Any) -> str:
        return f"{x:9.4f}" if isinstance(x, (int, float)) else f"{'nan':>9}"

    lines = ["  ".join(f"{k:>9}" for k in GLOBAL_KEYS)]
    lines.append("  ".join(num(metrics["global"].get(k)) for k in GLOBAL_KEYS))
    rows = metrics.get("per_object", [])
    if rows:
        names = [f"{r['sequence']}_{r['object']}" for r in rows]
        width = max(max(len(n) for n in names), 6)
        lines.append("")
        lines.append(f"{'object':<{width}}  {'J&F-Mean':>9}  {'J-Mean':>9}  {'F-Mean':>9}")
        for name, r in zip(names, rows, strict=True):
            lines.append(f"{name:<{width}}  {num(r['J&F-Mean'])}  {num(r['J-Mean'])}  {num(r['F-Mean'])}")
    return "\n".join(lines)


def _check_frame_size(
    frame: np.ndarray, frames: list[Path], i: int, seq: str, first_size: tuple[int, int]
) -> None:
    """Refuses a frame whose size differs from the sequence's first frame, naming both files."""
    size = tuple(frame.shape[:2])
    if size != tuple(first_size):
        raise ShapeMismatchError(
            f"sequence {seq!r}: frame {frames[i]} is {size[0]}x{size[1]} (HxW) but the first frame "
            f"{frames[0]} is {first_size[0]}x{first_size[1]}; every frame of a sequence must have the "
            "size of its first frame and annotation: resize that frame (or re-export the sequence at "
            "one resolution) and run again"
        )


def _select(dataset: VosDataset, sequences: Iterable[str] | None) -> list[str]:
    names = (
        list(dataset.sequences)
        if sequences is None
        else [sequences]
        if isinstance(sequences, str)
        else list(sequences)
    )
    unknown = [s for s in names if s not in dataset.sequences]
    if unknown:
        raise DataError(f"sequences {unknown} are not in the data set (it has {list(dataset.sequences)})")
    if not names:
        raise DataError("no sequences to evaluate")
    return names


def run_vos(
    tracker_factory: TrackerFactory,
    dataset: VosDataset,
    out_dir: str | Path,
    sequences: Iterable[str] | None = None,
    overlays: bool = True,
    progress: bool = True,
    missing_objects: str = "empty",
    extra: dict | None = None,
    workers: int | None = None,
) -> dict:
    """Tracks every sequence from its first-frame annotation, writes predictions and scores them.

    Args:
        tracker_factory: returns a fresh tracker (called once per sequence) whose
            ``step(frame, masks)`` takes ``(H, W, 3) uint8`` RGB and, on frame 0 only, the
            ``(H, W)`` annotation (void 255 mapped to background), and returns ``(H, W)`` ids.
        dataset: a DAVIS-layout reader (:class:`corr_core.data.davis.DavisDataset`).
        out_dir: output folder: ``predictions/<seq>/<frame>.png``, ``overlays/<seq>/<frame>.jpg``
            and the reports of :func:`write_reports`.
        sequences: subset of ``dataset.sequences`` (default: all).
        overlays: also write overlay JPEGs.
        progress: print one line per sequence to stderr.
        missing_objects: ``"empty"`` (default) scores an object the tracker lost in every scored
            frame as an empty mask; ``"raise"`` refuses, as the official evaluator does.
        extra: more entries for ``metrics.json`` (e.g. checkpoint, propagation settings).
        workers: scoring threads.

    Returns:
        The ``metrics.json`` dictionary: ``global`` (J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean,
        F-Recall, F-Decay), ``per_object`` rows, ``tracking`` (frames, seconds, frames/s of
        ``step`` calls), ``timestamp``, ...

    Raises:
        DataError: unknown sequences, unreadable frames, or missing annotations for scoring.
        ShapeMismatchError: a frame's size differs from its sequence's first frame (the message
            names the sequence, both files and both sizes), or the tracker returned labels of the
            wrong size or type. Other errors the tracker raises are re-raised with the sequence
            and the frame file prefixed.
    """
    out_dir = Path(out_dir)
    names = _select(dataset, sequences)
    pred_root = out_dir / "predictions"
    overlay_root = out_dir / "overlays"
    step_seconds = 0.0
    n_frames = 0
    per_sequence_fps = {}
    for k, seq in enumerate(names):
        frames = dataset.frames(seq)
        if not frames:
            raise DataError(f"sequence {seq!r} has no frames")
        tracker = tracker_factory()
        seq_seconds = 0.0
        first_size = (0, 0)
        for i, frame_path in enumerate(frames):
            frame = dataset.read_frame(seq, i)
            masks = None
            if i == 0:
                first_size = (int(frame.shape[0]), int(frame.shape[1]))
                masks = void_to_background(dataset.read_annotation(seq, 0))
            else:
                _check_frame_size(frame, frames, i, seq, first_size)
            t0 = time.perf_counter()
            try:
                labels = tracker.step(frame, masks)
            except CorrError as exc:  # the tracker does not know which file it was given
                raise type(exc)(f"sequence {seq!r}, frame {frame_path}: {exc}") from exc
            seq_seconds += time.perf_counter() - t0
            labels = checked_labels(labels, frame.shape[:2], f"sequence {seq!r}, frame {frame_path}")
            stem = Path(frame_path).stem
            write_label_png(pred_root / seq / f"{stem}.png", labels)
            if overlays:
                path = overlay_root / seq / f"{stem}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(overlay(frame, labels)).save(path, quality=90)
        step_seconds += seq_seconds
        n_frames += len(frames)
        per_sequence_fps[seq] = len(frames) / seq_seconds if seq_seconds > 0 else None
        log(
            progress,
            f"[{k + 1}/{len(names)}] {seq}: {len(frames)} frames, "
            f"{len(frames) / max(seq_seconds, 1e-9):.1f} frames/s tracking",
        )

    annotations = {seq: list(dataset.annotations(seq)) for seq in names}
    results = evaluate_files(annotations, pred_root, missing_objects=missing_objects, workers=workers)
    tracking = {
        "frames": n_frames,
        "seconds": step_seconds,
        "frames_per_second": n_frames / step_seconds if step_seconds > 0 else None,
        "per_sequence_frames_per_second": per_sequence_fps,
    }
    metrics = write_reports(
        results,
        out_dir,
        {
            "tracking": tracking,
            "predictions": str(pred_root),
            "missing_objects_policy": missing_objects,
            **(extra or {}),
        },
    )
    for seq, ids in results.missing_objects.items():
        log(
            progress,
            f"warning: {seq}: object(s) {ids} never predicted in the scored frames (scored as empty)",
        )
    log(progress, format_summary(metrics))
    return metrics


def score_predictions(
    davis_root: str | Path,
    pred_dir: str | Path,
    split: str | Path | None = None,
    sequences: Iterable[str] | None = None,
    resolution: str = "480p",
    year: str = "2016",
    out_dir: str | Path | None = None,
    missing_objects: str = "raise",
    workers: int | None = None,
) -> dict:
    """Scores an existing predictions folder (``<pred_dir>/<seq>/<frame>.png``) on a DAVIS set.

    Args:
        davis_root: DAVIS-layout root with ``Annotations/<resolution>``.
        pred_dir: predictions folder; a folder holding ``predictions/`` (a :func:`run_vos`
            output) works too.
        split: split name or file; with ``sequences`` also None, every annotated sequence.
        sequences: explicit sequence names.
        resolution: annotation resolution.
        year: ``ImageSets`` year for split names.
        out_dir: where to write the reports (none written when None).
        missing_objects: ``"raise"`` (official) or ``"empty"``.
        workers: scoring threads.

    Returns:
        The same dictionary as ``metrics.json`` (without tracking speed).
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"predictions folder not found: {pred_dir}")
    if (pred_dir / "predictions").is_dir() and not any(pred_dir.glob("*/*.png")):
        pred_dir = pred_dir / "predictions"
    results = evaluate_davis(
        davis_root,
        pred_dir,
        split=split,
        sequences=sequences,
        resolution=resolution,
        year=year,
        missing_objects=missing_objects,
        workers=workers,
    )
    extra = {"predictions": str(pred_dir), "missing_objects_policy": missing_objects}
    if out_dir is not None:
        return write_reports(results, out_dir, extra)
    return json_ready(
        {
            "protocol": _PROTOCOL,
            "timestamp": timestamp(),
            **results.to_dict(),
            **extra,
        }
    )
