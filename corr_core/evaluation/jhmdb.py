"""JHMDB pose-keypoint propagation evaluated with PCK (the CRW / UVC protocol).

:func:`run_jhmdb` runs every video of a JHMDB test list through label propagation and scores it:

1. each frame is resized to ``image_size`` (CRW: 320 x 320, aspect ratio not kept) and encoded by
   the feature model (stride 8 -> a 40 x 40 grid);
2. the 15 joints of frame 0 become Gaussian label maps on the feature grid plus a background
   channel (:func:`corr_core.metrics.jhmdb.keypoints_to_label_maps`, ``sigma = 0.5`` cells);
3. the maps are propagated frame by frame with the CRW step of :mod:`corr_core.propagation.crw`:
   the context is the first frame with its given maps plus the ``m`` preceding frames with their
   *predicted soft* maps (fed back), the short-term memory starting as ``m`` copies of the first
   frame, exactly as :class:`~corr_core.propagation.tracker.Tracker` does for masks. The memory is
   bounded (first frame + ``m`` frames) whatever the video length;
4. each frame's joint maps are read back as keypoints (weighted mean of the top-3 cells,
   :func:`~corr_core.metrics.jhmdb.label_maps_to_keypoints`) in original image pixels and scored
   with PCK@0.1..0.5 pooled over the data set (:class:`~corr_core.metrics.jhmdb.PCKAccumulator`;
   frame 0 is the given annotation and is not scored).

The joint maps go through the same :class:`~corr_core.propagation.tracker.Tracker` as VOS masks,
with its soft-label entry points (``start_soft`` / ``step_soft``).
Propagation settings default to SFC Table 0.A.1, JHMDB column: top-k 10, ``m = 8``, radius 3
feature cells, temperature 0.05.

Outputs in ``out_dir``::

    per_video.csv          video, frames, scored joint-frames, PCK@0.1 ... PCK@0.5 of that video
    summary.csv            one row: PCK@0.1 ... PCK@0.5 (mean over joints, pooled over videos)
    metrics.json           global PCK, per-joint PCK, per-video rows, tracking speed, settings
    keypoints/<class>/<video>.npy   (T, 15, 2) float64 predicted (x, y) pixels, -1 = not visible

Data layout (official JHMDB, see :mod:`corr_core.data.jhmdb`)::

    root/Frames/<class>/<video>/00001.png ...
    root/joint_positions/<class>/<video>/joint_positions.mat
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from corr_core.data.jhmdb import (
    JOINT_NAMES,
    discover_videos,
    list_frames,
    load_joint_positions,
    resolve_videos,
    video_name,
)
from corr_core.errors import ConfigError, DataError, ShapeMismatchError
from corr_core.evaluation.frames import read_rgb, resize_rgb
from corr_core.evaluation.protocol import SoftLabelTracker
from corr_core.evaluation.reports import json_ready, log, timestamp, write_csv, write_json
from corr_core.metrics.jhmdb import (
    DEFAULT_SIGMA,
    DEFAULT_THRESHOLDS,
    DEFAULT_TOPK,
    PCKAccumulator,
    keypoints_to_label_maps,
    label_maps_to_keypoints,
    pck,
)
from corr_core.propagation.config import PropagationConfig
from corr_core.propagation.tracker import Tracker

__all__ = [
    "JHMDB_IMAGE_SIZE",
    "JHMDB_PROPAGATION",
    "discover_videos",
    "format_jhmdb_summary",
    "jhmdb_config",
    "resolve_videos",
    "run_jhmdb",
]

#: SFC Table 0.A.1, JHMDB column (single network), with CRW's temperature.
JHMDB_PROPAGATION: dict[str, Any] = {"topk": 10, "context": 8, "radius": 3.0, "temperature": 0.05}
#: CRW's JHMDB input size ``(H, W)`` (``--cropSize 320``: frames are resized to 320 x 320).
JHMDB_IMAGE_SIZE = (320, 320)


def jhmdb_config(propagation: PropagationConfig | dict[str, Any] | None = None) -> PropagationConfig:
    """A :class:`PropagationConfig` with the JHMDB defaults, updated by ``propagation``.

    Args:
        propagation: a full config (used as it is), a dict of fields overriding
            :data:`JHMDB_PROPAGATION`, or None for the defaults.

    Raises:
        ConfigError: on an unknown field or an invalid value.
    """
    if isinstance(propagation, PropagationConfig):
        return propagation
    values = {**JHMDB_PROPAGATION, **(propagation or {})}
    return PropagationConfig.from_dict(values)


def _read_rgb(path: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """``(frame resized to size, original (H, W))``; bilinear resize as CRW's ``cv2.resize``."""
    rgb = read_rgb(path)
    return resize_rgb(rgb, size), (int(rgb.shape[0]), int(rgb.shape[1]))


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------


def _feature_model(model: Any, propagation: Any, device: Any) -> tuple[Any, PropagationConfig, Any]:
    """(feature model, config, device) from a feature model or a tracker with a ``model`` and ``cfg``.

    The videos are propagated by a tracker of their own (:class:`SoftLabelTracker` entry points),
    so a tracker given here is read, never changed.
    """
    is_tracker = isinstance(model, SoftLabelTracker) and hasattr(model, "model") and hasattr(model, "cfg")
    if is_tracker and not isinstance(model, torch.nn.Module):
        if model.model is None:
            raise ConfigError("run_jhmdb: the tracker has no feature model (built from_features?)")
        cfg = model.cfg if propagation is None else jhmdb_config(propagation)
        return model.model, cfg, getattr(model, "device", device)
    if not callable(model):
        raise ConfigError(
            f"run_jhmdb needs a feature model (nn.Module) or a Tracker, got {type(model).__name__}"
        )
    return model, jhmdb_config(propagation), device


def _propagate_video(
    prop: SoftLabelTracker,
    frames: Sequence[Path],
    gt: np.ndarray,
    image_size: tuple[int, int] | None,
    sigma: float,
    readback_topk: int,
) -> tuple[np.ndarray, float]:
    """Predicted ``(T, J, 2)`` keypoints of one video and the seconds spent encoding + propagating."""
    n_joints = gt.shape[1]
    pred = np.full((len(frames), n_joints, 2), -1.0)
    seconds = 0.0
    orig0 = None
    for t, path in enumerate(frames):
        frame, orig = _read_rgb(path, image_size)
        if orig0 is None:
            orig0 = orig
        elif orig != orig0:
            raise ShapeMismatchError(
                f"{path}: frame is {orig[0]}x{orig[1]}, the video's first frame {orig0[0]}x{orig0[1]}"
            )
        t0 = time.perf_counter()
        feat = prop.encode(frame)
        if t == 0:
            maps = keypoints_to_label_maps(
                gt[0], orig, (int(feat.shape[1]), int(feat.shape[2])), sigma=sigma, add_background=True
            )
            soft = prop.start_soft(feat, maps)
        else:
            soft = prop.step_soft(feat)
        seconds += time.perf_counter() - t0
        pred[t] = label_maps_to_keypoints(soft[1:].cpu().numpy(), orig, topk=readback_topk)
    return pred, seconds


def format_jhmdb_summary(metrics: dict) -> str:
    """Two-line table of the global PCK values of a JHMDB ``metrics.json`` dictionary."""
    keys = list(metrics["global"])
    head = "  ".join(f"{k:>8}" for k in keys)
    vals = "  ".join(
        f"{metrics['global'][k]:8.4f}" if isinstance(metrics["global"][k], (int, float)) else f"{'nan':>8}"
        for k in keys
    )
    return f"{head}\n{vals}"


def run_jhmdb(
    model: Any,
    root: str | Path | None,
    filelist: str | Path | None,
    out_dir: str | Path,
    *,
    propagation: PropagationConfig | dict[str, Any] | None = None,
    image_size: tuple[int, int] | None = JHMDB_IMAGE_SIZE,
    sigma: float = DEFAULT_SIGMA,
    readback_topk: int = DEFAULT_TOPK,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    device: str | torch.device = "cpu",
    max_videos: int | None = None,
    progress: bool = True,
    extra: dict | None = None,
) -> dict:
    """Propagates frame-0 joints through every video and scores them with PCK (module docstring).

    Args:
        model: the feature network (``(1, 3, H, W)`` float RGB in [0, 1] -> ``(1, C, h, w)``), or a
            :class:`~corr_core.propagation.tracker.Tracker` whose model (and, when ``propagation``
            is None, whose settings) are used.
        root: official-layout JHMDB root (``Frames/``, ``joint_positions/``); every video under it
            when ``filelist`` is None, else the fall-back base for the list's relative paths.
        filelist: a CRW/UVC test list (``<frames folder> <joint_positions.mat>`` per line).
        out_dir: output folder (created).
        propagation: settings overriding :data:`JHMDB_PROPAGATION` (dict) or a full config.
        image_size: ``(H, W)`` frames are resized to before encoding (CRW: 320 x 320); None keeps
            the original size. Keypoints are always reported in original pixels.
        sigma: Gaussian width of the label maps in feature cells (0.5).
        readback_topk: cells averaged when reading a joint back (3).
        thresholds: PCK thresholds.
        device: torch device for a bare feature model.
        max_videos: evaluate only the first videos (smoke runs).
        progress: one line per video on stderr.
        extra: more entries for ``metrics.json`` (e.g. checkpoint).

    Returns:
        The ``metrics.json`` dictionary: ``global`` (``PCK@<thr>`` fractions), ``per_joint``,
        ``per_video``, ``counts``, ``tracking``, ``settings``, ``timestamp``.

    Raises:
        DataError: missing/unreadable frames or joint files, or a video without frames.
        ShapeMismatchError: frames of different sizes in one video, or a bad model output.
        ConfigError: invalid propagation settings.
    """
    feature_model, cfg, device = _feature_model(model, propagation, device)
    if image_size is not None:
        image_size = (int(image_size[0]), int(image_size[1]))
        if min(image_size) < 1:
            raise ConfigError(f"image_size must be positive (H, W), got {image_size}")
    videos = resolve_videos(root, filelist)
    if max_videos is not None:
        videos = videos[: max(0, int(max_videos))]
    if not videos:
        raise DataError("no JHMDB video to evaluate")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prop = Tracker(feature_model, cfg, device)
    acc = PCKAccumulator(thresholds)
    keys = [f"PCK@{t:g}" for t in acc.thresholds]
    per_video = []
    total_seconds, total_frames = 0.0, 0
    for k, video in enumerate(videos):
        name = video_name(video)
        frames = list_frames(video.frames_dir)
        gt = load_joint_positions(video.joints_path, num_joints=None)
        n = min(len(frames), gt.shape[0])
        if n < 1:
            raise DataError(f"{video.frames_dir}: no frame to evaluate")
        gt = gt[:n]
        pred, seconds = _propagate_video(prop, frames[:n], gt, image_size, sigma, readback_topk)
        prop.reset()
        acc.add(pred, gt)
        scores = pck(pred, gt, acc.thresholds)
        row = {
            "video": name,
            "frames": len(frames),
            "annotated_frames": int(gt.shape[0]),
            "evaluated_frames": n,
            "counted": int(scores["num_counted"]),
            **{key: scores[key] for key in keys},
        }
        per_video.append(row)
        path = out_dir / "keypoints" / f"{name}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, pred, allow_pickle=False)
        total_seconds += seconds
        total_frames += n
        log(
            progress,
            f"[{k + 1}/{len(videos)}] {name}: {n} frames, PCK@0.1 {scores.get(keys[0], float('nan')):.3f}, "
            f"{n / max(seconds, 1e-9):.1f} frames/s",
        )

    summary = acc.summary()
    per_joint_arr = acc.per_joint()
    joint_names = (
        JOINT_NAMES
        if per_joint_arr.shape[1] == len(JOINT_NAMES)
        else tuple(str(j) for j in range(per_joint_arr.shape[1]))
    )
    metrics = {
        "protocol": "JHMDB keypoint propagation, PCK (CRW/UVC eval_pck.py semantics)",
        "timestamp": timestamp(),
        "global": {key: summary[key] for key in keys},
        "per_joint": {
            name: {key: float(per_joint_arr[i, j]) for i, key in enumerate(keys)}
            for j, name in enumerate(joint_names)
        },
        "per_video": per_video,
        "counts": {"videos": int(summary["num_videos"]), "counted_joint_frames": int(summary["num_counted"])},
        "tracking": {
            "frames": total_frames,
            "seconds": total_seconds,
            "frames_per_second": total_frames / total_seconds if total_seconds > 0 else None,
        },
        "settings": {
            "propagation": cfg.to_dict(),
            "image_size": list(image_size) if image_size is not None else None,
            "sigma": sigma,
            "readback_topk": readback_topk,
            "root": None if root is None else str(root),
            "filelist": None if filelist is None else str(filelist),
        },
        **(extra or {}),
    }
    metrics = json_ready(metrics)
    write_csv(
        out_dir / "per_video.csv",
        ["video", "frames", "annotated_frames", "evaluated_frames", "counted", *keys],
        (
            [r[c] for c in ("video", "frames", "annotated_frames", "evaluated_frames", "counted", *keys)]
            for r in per_video
        ),
    )
    write_csv(out_dir / "summary.csv", keys, [[metrics["global"][key] for key in keys]])
    write_json(out_dir / "metrics.json", metrics)
    log(progress, format_jhmdb_summary(metrics))
    return metrics
