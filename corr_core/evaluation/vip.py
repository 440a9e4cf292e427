"""VIP human-part propagation evaluated with the pooled 20-class mIoU (the TimeCycle/UVC protocol).

:func:`run_vip` propagates the part map of each video's first frame through the video with a
tracker (the same :class:`~corr_core.propagation.tracker.Tracker` as DAVIS; part ids are the
"objects"), writes the predictions for the annotated frames and scores them with one confusion
histogram pooled over every scored frame of every video
(:class:`~corr_core.metrics.vip.ConfusionHistogram`, as ``eval_vip.py``).

Protocol details, as UVC's ``test_mask_vip.py`` + ``eval_vip.py``:

* frames are resized to ``size`` (UVC: ``--scale_size 560 560``, aspect ratio not kept) before
  tracking; predictions are resized back to the annotation's size with nearest neighbour;
* the first frame's annotation is the input; annotation values outside ``0..num_classes-1``
  (VIP marks unlabelled pixels 255) are given to the tracker as background;
* the first frame is scored too (``score_first_frame=True``): UVC copies the first annotation
  into its results folder and ``eval_vip.py`` scores every PNG found there;
* ground-truth values outside ``0..num_classes-1`` are ignored by the histogram.

Propagation settings for the tracker: SFC Table 0.A.1, VIP column (:data:`VIP_PROPAGATION`:
top-k 10, ``m = 8``, radius 15 cells).

Data layout (``VIP_Fine``, as UVC reads it)::

    root/Images/<video>/<frame>.jpg                    frames (sorted by name; .jpg, .jpeg or .png)
    root/Annotations/Category_ids/<video>/<frame>.png  part ids 0..19 (255 = unlabelled), for the
                                                       first frame and every frame to be scored
    root/lists/val_videos.txt                          optional split: one video per line (only
                                                       the last path component is used)

Every frame in ``Images/<video>`` is tracked (a ``VIP_Fine`` video holds the annotated frames
only, one every 25 of the original video; a folder with every frame works the same way); the
frames with an annotation of the same stem are scored. Outputs in ``out_dir``::

    predictions/<video>/<frame>.png   predicted part ids (palette PNG) for every scored frame
    per_video.csv                     video, frames, scored frames, mIoU, pixel accuracy (per video)
    summary.csv                       one row: mIoU, pixel_accuracy, mean_accuracy, fwIoU
    metrics.json                      global numbers, per-class IoU, per-video rows, tracking speed
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from corr_core.data.labels import read_label_png, write_label_png
from corr_core.errors import ConfigError, DataError
from corr_core.evaluation.frames import read_rgb, resize_rgb
from corr_core.evaluation.protocol import LabelTracker, TrackerFactory, checked_labels
from corr_core.evaluation.reports import json_ready, log, timestamp, write_csv, write_json
from corr_core.metrics.vip import NUM_CLASSES, ConfusionHistogram, resize_labels_nearest

__all__ = [
    "GLOBAL_KEYS",
    "VIP_PROPAGATION",
    "VIP_SIZE",
    "VipTracker",
    "format_vip_summary",
    "list_vip_videos",
    "run_vip",
    "vip_frames",
]

#: SFC Table 0.A.1, VIP column (single network), with CRW's temperature.
VIP_PROPAGATION: dict[str, Any] = {"topk": 10, "context": 8, "radius": 15.0, "temperature": 0.05}
#: UVC's VIP input size ``(H, W)`` (``--scale_size 560 560``).
VIP_SIZE = (560, 560)
GLOBAL_KEYS = ("mIoU", "pixel_accuracy", "mean_accuracy", "fwIoU")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


#: The tracker :func:`run_vip` needs (the shared protocol of every evaluation; old name kept).
VipTracker = LabelTracker


def _images_dir(root: Path) -> Path:
    images = root / "Images"
    if not images.is_dir():
        raise DataError(f"VIP root {root} has no Images/ folder (expected Images/<video>/<frame>.jpg)")
    return images


def _annotations_dir(root: Path) -> Path:
    ann = root / "Annotations" / "Category_ids"
    if not ann.is_dir():
        raise DataError(
            f"VIP root {root} has no Annotations/Category_ids/ folder (expected "
            "Annotations/Category_ids/<video>/<frame>.png)"
        )
    return ann


def list_vip_videos(root: str | Path, split: str | Path | None = None) -> list[str]:
    """Video names to evaluate: those of a split file, else every folder under ``root/Images``.

    Args:
        root: VIP root (module docstring).
        split: a file with one video per line (UVC's ``lists/val_videos.txt``: only the last path
            component of a line is used; blank lines and ``#`` comments are skipped). A bare name
            is also looked up in ``root/lists/`` (with or without ``.txt``).

    Raises:
        DataError: missing folders or split file, an empty split, or a listed video without frames.
    """
    root = Path(root)
    images = _images_dir(root)
    if split is None:
        names = sorted(p.name for p in images.iterdir() if p.is_dir())
        if not names:
            raise DataError(f"no video folder under {images}")
        return names
    path = Path(split)
    if not path.is_file():
        for cand in (root / "lists" / path.name, root / "lists" / f"{path.name}.txt"):
            if cand.is_file():
                path = cand
                break
        else:
            raise DataError(f"VIP split file not found: {split}")
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names.append(line.rstrip("/").split("/")[-1])
    if not names:
        raise DataError(f"VIP split file {path} lists no video")
    missing = [n for n in names if not (images / n).is_dir()]
    if missing:
        raise DataError(f"{path}: videos without a frame folder under {images}: {missing[:5]}")
    return names


def vip_frames(root: str | Path, video: str) -> list[Path]:
    """The frames of ``root/Images/<video>``, sorted by name.

    Raises:
        DataError: if the folder is missing or holds no image.
    """
    folder = _images_dir(Path(root)) / video
    if not folder.is_dir():
        raise DataError(f"VIP frame folder not found: {folder}")
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file())
    if not frames:
        raise DataError(f"VIP frame folder {folder} holds no .jpg/.png frame")
    return frames


def _num(x: Any) -> str:
    return f"{x:9.4f}" if isinstance(x, (int, float)) else f"{'nan':>9}"


def format_vip_summary(metrics: dict) -> str:
    """Plain-text table of a VIP ``metrics.json`` dictionary: global numbers, then per class."""
    lines = ["  ".join(f"{k:>14}" for k in GLOBAL_KEYS)]
    lines.append("  ".join(f"{_num(metrics['global'].get(k)):>14}" for k in GLOBAL_KEYS))
    per_class = {k: v for k, v in (metrics.get("per_class_iou") or {}).items() if v is not None and v == v}
    if per_class:  # classes absent from both ground truth and predictions (NaN) are left out
        lines.append("")
        width = max(len(n) for n in per_class)
        lines.extend(f"{name:<{width}}  {_num(v)}" for name, v in per_class.items())
    return "\n".join(lines)


def run_vip(
    tracker_factory: TrackerFactory,
    root: str | Path,
    out_dir: str | Path,
    *,
    split: str | Path | None = None,
    videos: Sequence[str] | None = None,
    size: tuple[int, int] | None = VIP_SIZE,
    num_classes: int = NUM_CLASSES,
    score_first_frame: bool = True,
    progress: bool = True,
    extra: dict | None = None,
) -> dict:
    """Tracks every video's first-frame part map, writes the predictions and scores them.

    Args:
        tracker_factory: returns a fresh tracker (called once per video) whose
            ``step(frame, masks)`` takes ``(H, W, 3) uint8`` RGB and, on frame 0 only, the
            ``(H, W)`` part ids, and returns ``(H, W)`` ids. Build it with
            :data:`VIP_PROPAGATION` for the paper's settings.
        root: VIP root (module docstring has the layout).
        out_dir: output folder (created).
        split: split file (see :func:`list_vip_videos`); ignored when ``videos`` is given.
        videos: explicit video names.
        size: ``(H, W)`` frames are resized to for tracking (UVC: 560 x 560); None keeps the
            original size.
        num_classes: 20 for VIP.
        score_first_frame: also score frame 0, the given annotation (the reference does).
        progress: one line per video on stderr.
        extra: more entries for ``metrics.json``.

    Returns:
        The ``metrics.json`` dictionary: ``global`` (mIoU, pixel_accuracy, mean_accuracy, fwIoU),
        ``per_class_iou``, ``per_video``, ``counts``, ``tracking``, ``settings``, ``timestamp``.

    Raises:
        DataError: missing folders, frames or first-frame annotation, or no frame to score.
        ShapeMismatchError: the tracker returned labels of the wrong size or type.
    """
    root = Path(root)
    ann_root = _annotations_dir(root)
    names = list(videos) if videos is not None else list_vip_videos(root, split)
    if not names:
        raise DataError("no VIP video to evaluate")
    if size is not None:
        size = (int(size[0]), int(size[1]))
        if min(size) < 1:
            raise ConfigError(f"size must be positive (H, W), got {size}")
    out_dir = Path(out_dir)
    pred_root = out_dir / "predictions"
    hist = ConfusionHistogram(num_classes)
    per_video = []
    total_seconds, total_frames = 0.0, 0
    for k, video in enumerate(names):
        frames = vip_frames(root, video)
        first_ann = ann_root / video / f"{frames[0].stem}.png"
        if not first_ann.is_file():
            raise DataError(f"VIP video {video!r}: first-frame annotation not found: {first_ann}")
        video_hist = ConfusionHistogram(num_classes)
        tracker = tracker_factory()
        seconds = 0.0
        scored = 0
        for i, frame_path in enumerate(frames):
            ann_path = ann_root / video / f"{frame_path.stem}.png"
            frame = read_rgb(frame_path)
            small = resize_rgb(frame, size)
            masks = None
            gt = None
            if i == 0:
                gt = read_label_png(first_ann, require_palette=False)
                masks = np.where(gt < num_classes, gt, 0).astype(np.uint8)
                masks = resize_labels_nearest(masks, small.shape[:2])
            t0 = time.perf_counter()
            labels = tracker.step(small, masks)
            seconds += time.perf_counter() - t0
            labels = checked_labels(labels, small.shape[:2], f"video {video!r}, frame {frame_path.name}")
            if i == 0 and not score_first_frame:
                continue
            if not ann_path.is_file():
                continue
            if gt is None:
                gt = read_label_png(ann_path, require_palette=False)
            pred = resize_labels_nearest(labels, gt.shape)
            try:
                video_hist.add(gt, pred)
            except DataError as exc:
                raise DataError(f"video {video!r}, frame {frame_path.name}: {exc}") from exc
            write_label_png(pred_root / video / f"{frame_path.stem}.png", pred)
            scored += 1
        hist.merge(video_hist)
        vs = video_hist.summary()
        per_video.append(
            {
                "video": video,
                "frames": len(frames),
                "scored_frames": scored,
                "mIoU": vs["mIoU"],
                "pixel_accuracy": vs["pixel_accuracy"],
            }
        )
        total_seconds += seconds
        total_frames += len(frames)
        log(
            progress,
            f"[{k + 1}/{len(names)}] {video}: {len(frames)} frames, {scored} scored, mIoU {vs['mIoU']:.3f}, "
            f"{len(frames) / max(seconds, 1e-9):.1f} frames/s tracking",
        )
    if hist.num_frames == 0:
        raise DataError(f"no annotated frame to score under {ann_root}")
    summary = hist.summary()
    metrics = {
        "protocol": "VIP part propagation, pooled mIoU (TimeCycle/UVC eval_vip.py semantics)",
        "timestamp": timestamp(),
        "global": {key: summary[key] for key in GLOBAL_KEYS},
        "per_class_iou": summary["per_class_iou"],
        "per_video": per_video,
        "counts": {
            "videos": len(names),
            "scored_frames": int(summary["num_frames"]),
            "pixels": int(summary["num_pixels"]),
        },
        "tracking": {
            "frames": total_frames,
            "seconds": total_seconds,
            "frames_per_second": total_frames / total_seconds if total_seconds > 0 else None,
        },
        "settings": {
            "size": None if size is None else list(size),
            "num_classes": num_classes,
            "score_first_frame": score_first_frame,
            "root": str(root),
            "split": None if split is None else str(split),
        },
        "predictions": str(pred_root),
        **(extra or {}),
    }
    metrics = json_ready(metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = ("video", "frames", "scored_frames", "mIoU", "pixel_accuracy")
    write_csv(out_dir / "per_video.csv", cols, ([r[c] for c in cols] for r in per_video))
    write_csv(out_dir / "summary.csv", GLOBAL_KEYS, [[metrics["global"][key] for key in GLOBAL_KEYS]])
    write_json(out_dir / "metrics.json", metrics)
    log(progress, format_vip_summary(metrics))
    return metrics
