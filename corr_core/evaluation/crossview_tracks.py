"""Cross-view correspondence scored as tracks, the way ``corr_node`` serves it (``corr eval crossview --tracks``).

:mod:`corr_core.evaluation.crossview` scores single matches. A robot sees something else: masks
given on the anchor camera's first frame only, every other camera receiving the ids through the
matcher and then tracking them, matched again when an object goes missing
(:class:`~corr_core.crossview.multicam.MultiCameraTracker`, the logic the node serves). Here each
episode of a ``corr generate sim`` folder is played that way, and each other camera's labels are
scored with DAVIS J&F over the objects that camera shows (:func:`score_shown_objects`), with the
pixels given to objects it never shows counted apart. With ``geometry`` every camera is a moving
camera of a calibrated rig whose pose comes with each frame (the episode's metadata, as TF would
give it) and, for ``"depth"``, the anchor camera's depth too (RGB-D).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from corr_core.errors import ConfigError

__all__ = ["evaluate_tracks", "score_shown_objects", "tracks_table"]


def score_shown_objects(gt: np.ndarray, pred: np.ndarray, name: str = "") -> tuple[dict[str, float], int]:
    """DAVIS J&F of ``pred`` over the objects ``gt`` shows, and the pixels ``pred`` gives to objects
    ``gt`` never shows (``(T, H, W)`` id maps of one camera).

    The ids are renumbered 1..k first: DAVIS scores ids 1..max of the first frame, so a gap (an
    object of the anchor camera this camera never shows, as the sim hides one per camera) would
    count as an object with empty ground truth in some episodes and not in others.
    """
    from corr_core.metrics.davis import evaluate_sequence

    gt, pred = gt.astype(np.int64), pred.astype(np.int64)
    shown = np.unique(gt)
    shown = shown[shown != 0]
    table = np.zeros(int(max(gt.max(initial=0), pred.max(initial=0))) + 1, np.int64)
    table[shown] = np.arange(1, len(shown) + 1)
    phantom = int(np.count_nonzero((pred != 0) & (table[pred] == 0)))
    result = evaluate_sequence(table[gt], table[pred], name=name, missing_objects="empty")
    j = float(np.mean([o["J-Mean"] for o in result["objects"].values()]))
    f = float(np.mean([o["F-Mean"] for o in result["objects"].values()]))
    return {"J&F-Mean": (j + f) / 2, "J-Mean": j, "F-Mean": f}, phantom


def _play(scene: Any, multi: Any, anchor: str, geometry: str | None) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """One episode through ``multi``: ``({camera: (T, H, W) labels}, {camera: matches})``."""
    from corr_core.data.labels import read_label_png
    from corr_core.geometry import CameraPose
    from corr_core.methods.pcc.scenes import read_rgb

    cams = list(multi.trackers)
    labels: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    matches = dict.fromkeys(cams, 0)
    for t in range(scene.num_frames):
        frames = {c: read_rgb(scene.frames[c][t]) for c in cams}
        masks = {anchor: read_label_png(scene.labels[anchor][t])} if t == 0 else None
        extra: dict[str, Any] = {}
        if geometry is not None:
            extra["poses"] = {c: CameraPose.from_sim(scene.meta, c, t).T_world_cam for c in cams}
            if geometry == "depth":
                extra["anchor_depth"] = scene.depth_m(anchor, t, frames[anchor].shape[:2])
        step = multi.step(frames, masks, **extra)
        for c in step.matched:
            matches[c] += 1
        for c in cams:
            lab = step.labels[c]
            labels[c].append(np.zeros(frames[c].shape[:2], np.int64) if lab is None else lab.astype(np.int64))
    return {c: np.stack(v) for c, v in labels.items()}, matches


def evaluate_tracks(matcher: Any, scenes: Sequence[Any], build_trackers: Callable[[list[str]], dict[str, Any]],
                    anchor: str = "ego", geometry: str | None = None, retry_every: int = 10,
                    rematch_every: int = 0, resamples: int = 2000, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Plays every scene as ``corr_node``'s cross-view mode does (module docstring) and scores the
    cameras other than ``anchor``.

    Args:
        matcher: the cross-view matcher (its own existence thresholds decide, as in the node).
        build_trackers: ``cameras -> {camera: Tracker}``, fresh trackers for one episode.
        geometry: None (images only), ``"poses"`` or ``"depth"``.
        retry_every, rematch_every: as ``corr_node``'s ``crossview_retry_every`` / ``crossview_rematch_every``.

    Returns:
        Per camera: ``jf`` (mean over episodes), ``ci95`` (bootstrap over episodes), ``matches``,
        ``phantom_px``, ``episodes`` (one row each); and ``seconds``.
    """
    from corr_core.crossview.multicam import MultiCameraTracker
    from corr_core.crossview.rig import CameraRig
    from corr_core.data.labels import read_label_png
    from corr_core.geometry import CameraPose

    if geometry not in (None, "poses", "depth"):
        raise ConfigError(f"geometry must be None, 'poses' or 'depth', got {geometry!r}")
    if not scenes:
        raise ConfigError("no episode to play")
    cams = list(scenes[0].cameras)
    if anchor not in cams:
        raise ConfigError(f"anchor camera {anchor!r} is not one of the episodes' cameras {cams}")
    targets = [c for c in cams if c != anchor]
    started = time.time()
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in targets}
    for scene in scenes:
        rig = None
        if geometry is not None:  # every camera moving, its pose given with each frame
            rig = CameraRig({}, moving=cams, frame="world")
            for c in cams:
                pose = CameraPose.from_sim(scene.meta, c, 0)
                rig.set_intrinsics(c, pose.K, pose.size)
        multi = MultiCameraTracker(build_trackers(cams), matcher, anchor, rematch_every=rematch_every,
                                   retry_every=retry_every, rig=rig)
        labels, matches = _play(scene, multi, anchor, geometry)
        for c in targets:
            gt = np.stack([read_label_png(scene.labels[c][t]) for t in range(scene.num_frames)])
            score, phantom = score_shown_objects(gt, labels[c], name=f"{c}/{scene.name}")
            rows[c].append({"episode": scene.name, "jf": score["J&F-Mean"], "j": score["J-Mean"],
                            "f": score["F-Mean"], "matches": matches[c], "phantom_px": phantom})
            log(f"{scene.name} {c}: J&F {score['J&F-Mean']:.3f} ({matches[c]} matches, {phantom} px on objects "
                f"{c} does not show)")
    out: dict[str, Any] = {}
    for c, cam_rows in rows.items():
        jf = np.array([r["jf"] for r in cam_rows])
        boot = np.random.default_rng(0).choice(jf, (resamples, len(jf))).mean(1)
        out[c] = {"jf": float(jf.mean()), "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                  "matches": int(sum(r["matches"] for r in cam_rows)),
                  "phantom_px": int(sum(r["phantom_px"] for r in cam_rows)), "episodes": cam_rows}
    out["seconds"] = round(time.time() - started, 1)
    return out


def tracks_table(name: str, result: dict[str, Any]) -> str:
    """One Markdown row per scored camera."""
    lines = ["| method | camera | J&F (95 %) | matches | px on objects the camera never shows |",
             "|---|---|---|---|---|"]
    for cam, r in result.items():
        if isinstance(r, dict) and "jf" in r:
            lines.append(f"| {name} | {cam} | {r['jf']:.3f} ({r['ci95'][0]:.3f}..{r['ci95'][1]:.3f}) | "
                         f"{r['matches']} | {r['phantom_px']} |")
    return "\n".join(lines) + "\n"
