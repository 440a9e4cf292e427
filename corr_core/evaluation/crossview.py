"""Cross-view object correspondence on simulated episodes: EgoExo4D metrics and the distractor test.

For every episode, every ``every``-th instant and each direction (e.g. ego -> exo1 and exo1 ->
ego), each object visible in the source view (at least ``min_pixels``) is a query: its ground-truth
mask goes to the matcher with both images; the prediction is scored against the object's mask in
the target view with :class:`~corr_core.metrics.egoexo.EgoExoEvaluator` (IoU, contour accuracy,
location error on objects visible in the target; balanced accuracy of existence over all queries).
95 % intervals come from a bootstrap over episodes (episodes resampled with replacement, metrics
recomputed over their queries).

Distractor test: a query whose target view also shows a *look-alike* of the object (same shape,
size and texture; the episode's metadata lists them) counts as ``right`` when the predicted mask
overlaps the object more than any visible look-alike, ``lookalike`` when it overlaps a look-alike
more, and ``neither`` when it overlaps none of them.

With :class:`SimPoses` the matcher also gets both cameras' calibration at each instant (the
episode's metadata, optionally with a simulated calibration error), as a robot's TF and
``camera_info`` would give it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from corr_core.crossview.base import Matcher, MatchResult, array_key
from corr_core.errors import DataError
from corr_core.evaluation.crossview_queries import Query, SimPoses, queries  # noqa: F401  (re-exported)
from corr_core.geometry import ViewGeometry
from corr_core.methods.pcc.scenes import Scene
from corr_core.metrics.egoexo import EgoExoEvaluator, balanced_accuracy

log = logging.getLogger(__name__)

METRICS = ("iou", "location_error", "contour_accuracy", "balanced_accuracy")


def _lookalikes(scene: Scene) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for obj in scene.meta.get("objects", []):
        group = set(obj.get("lookalikes") or [])
        if obj.get("lookalike_of") is not None:
            group.add(int(obj["lookalike_of"]))
        out[int(obj["id"])] = {int(g) for g in group if int(g) != int(obj["id"])}
    # look-alike groups are symmetric: copies of one object look alike too
    for oid, group in list(out.items()):
        for other in group:
            out.setdefault(other, set()).add(oid)
    return out


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    return inter / max(1, np.count_nonzero(a | b))


class _Items:
    """Per-query scores of one direction with their episode, for the bootstrap."""

    def __init__(self) -> None:
        self.episode: list[int] = []
        self.exists: list[bool] = []
        self.pred: list[bool] = []
        self.scores: dict[str, list[float]] = {"iou": [], "location_error": [], "contour_accuracy": []}
        self.score_episode: list[int] = []

    def add(self, episode: int, item: dict[str, float]) -> None:
        self.episode.append(episode)
        self.exists.append(bool(item["gt_exists"]))
        self.pred.append(bool(item["pred_exists"]))
        if item["gt_exists"]:
            self.score_episode.append(episode)
            for k in self.scores:
                self.scores[k].append(item[k])

    def metrics(self, episodes: np.ndarray | None = None) -> dict[str, float]:
        """Micro-averaged metrics over the queries of ``episodes`` (a multiset; None: all)."""
        ep, sep = np.asarray(self.episode), np.asarray(self.score_episode)
        if episodes is None:
            sel, ssel = np.arange(len(ep)), np.arange(len(sep))
        else:
            sel = np.concatenate([np.nonzero(ep == e)[0] for e in episodes])
            ssel = np.concatenate([np.nonzero(sep == e)[0] for e in episodes])
        out = {k: float(np.mean(np.asarray(v)[ssel])) if len(ssel) else float("nan") for k, v in self.scores.items()}
        out["balanced_accuracy"] = balanced_accuracy(np.asarray(self.exists)[sel], np.asarray(self.pred)[sel])
        return out

    def intervals(self, n_episodes: int, resamples: int = 1000, seed: int = 0) -> dict[str, list[float]]:
        """95 % bootstrap intervals over episodes of each metric."""
        rng = np.random.default_rng(seed)
        draws = [self.metrics(rng.integers(n_episodes, size=n_episodes)) for _ in range(resamples)]
        return {k: [float(np.nanpercentile([d[k] for d in draws], 2.5)), float(np.nanpercentile([d[k] for d in draws], 97.5))]
                for k in METRICS}


def evaluate_crossview(matcher: Matcher, scenes: Sequence[Scene], directions: Sequence[tuple[str, str]],
                       every: int = 5, min_pixels: int = 20, overlays: Path | None = None,
                       max_overlays: int = 12, resamples: int = 1000, conf_thresh: float = 0.5,
                       poses: SimPoses | None = None) -> dict[str, Any]:
    """Scores ``matcher`` on simulated ``scenes`` (module docstring).

    Args:
        matcher: any :class:`~corr_core.crossview.base.Matcher`.
        scenes: episodes with ground-truth labels for the cameras of ``directions``.
        directions: ``(source camera, target camera)`` pairs, each scored apart.
        every: every n-th instant of each episode.
        min_pixels: an object smaller than this in a view counts as not visible there.
        overlays: folder for side-by-side pictures (query | prediction | ground truth), or None.
        max_overlays: pictures per direction.
        resamples: bootstrap resamples for the intervals.
        conf_thresh: an object counts as predicted visible when its confidence exceeds this (the
            EgoExo4D protocol's 0.5, or one chosen by :func:`calibrate_existence` on tuning data).
        poses: give the matcher both cameras' calibration (:class:`SimPoses`); None: images only.

    Returns:
        ``{"<src>-><tgt>": {metrics, "ci95": {...}, "distractor": {...}, "episodes": n}, ...,
        "seconds": ...}``.

    Raises:
        DataError: a scene without ground truth for a camera of ``directions``.
    """
    started = time.time()
    state: dict[str, tuple[EgoExoEvaluator, _Items, dict[str, Any], list[int]]] = {}
    for q in queries(scenes, directions, every, min_pixels, poses):
        if q.direction not in state:
            state[q.direction] = (EgoExoEvaluator(conf_thresh), _Items(), {"queries": 0, "right": 0, "lookalike": 0, "neither": 0}, [0])
        evaluator, items, distract, pictures = state[q.direction]
        look = _lookalikes(q.scene)
        res = q.match(matcher)
        for i in q.ids:
            gt = (q.tgt_truth == i) if i in q.visible else None
            pred = res.masks.get(i)
            item = evaluator.add(q.scene.name, i, q.direction, q.t, gt, pred, res.confidence.get(i, 0.0))
            items.add(q.episode, item)
            twins = look.get(i, set()) & q.visible
            if gt is not None and twins:
                distract["queries"] += 1
                p = pred if pred is not None else np.zeros_like(gt)
                right = _overlap(p, gt)
                other = max(_overlap(p, q.tgt_truth == j) for j in twins)
                distract["right" if right > other else "lookalike" if other > 0 else "neither"] += 1
        if overlays is not None and pictures[0] < max_overlays:
            _save_overlay(overlays / q.direction.replace("->", "_to_") / f"{q.scene.name}_{q.t:05d}.jpg",
                          q.src_rgb, q.labels, q.tgt_rgb, res.labels, q.tgt_truth)
            pictures[0] += 1
    out: dict[str, Any] = {}
    for name, (evaluator, items, distract, _) in state.items():
        summary = evaluator.summary()
        n = distract["queries"]
        distract["right_share"] = distract["right"] / n if n else None
        distract["lookalike_share"] = distract["lookalike"] / n if n else None
        out[name] = {**summary, "ci95": items.intervals(len(scenes), resamples), "distractor": distract,
                     "episodes": len(scenes)}
        log.info("%s: IoU %.3f, location error %.3f, balanced accuracy %.3f over %d queries; look-alike test %s",
                 name, summary["iou"], summary["location_error"], summary["balanced_accuracy"], summary["n_items"],
                 distract)
    out["seconds"] = round(time.time() - started, 1)
    out["conf_thresh"] = float(conf_thresh)
    return out


class ReplayMatcher:
    """A matcher that remembers its answers, so that a second pass over the same queries (scoring
    after calibrating on one set) does not match them again. After :meth:`rewind` each call is
    answered from the record when its inputs are the recorded ones (same images and labels, in
    the same order), and by the wrapped matcher otherwise."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.record: list[tuple[str, MatchResult]] = []
        self.position: int | None = None

    @staticmethod
    def _key(src_rgb: np.ndarray, src_labels: np.ndarray, tgt_rgb: np.ndarray,
             geometry: ViewGeometry | None = None) -> str:
        arrays = [src_rgb, src_labels, tgt_rgb]
        if geometry is not None:
            arrays += [geometry.src.K, geometry.src.T_world_cam, geometry.tgt.K, geometry.tgt.T_world_cam]
            arrays += [] if geometry.src_depth is None else [geometry.src_depth]
        return array_key(*arrays)

    def match(self, src_rgb: np.ndarray, src_labels: np.ndarray, tgt_rgb: np.ndarray,
              geometry: ViewGeometry | None = None) -> MatchResult:
        key = self._key(src_rgb, src_labels, tgt_rgb, geometry)
        if self.position is not None and self.position < len(self.record) and self.record[self.position][0] == key:
            self.position += 1
            return self.record[self.position - 1][1]
        result = self.matcher.match(src_rgb, src_labels, tgt_rgb, geometry=geometry)
        if self.position is None:
            self.record.append((key, result))
        return result

    def rewind(self) -> None:
        """Answer the next calls from the record, from its start."""
        self.position = 0


def calibrate_existence(matcher: Matcher, scenes: Sequence[Scene], directions: Sequence[tuple[str, str]],
                        every: int = 5, min_pixels: int = 20, poses: SimPoses | None = None) -> tuple[float, float]:
    """The confidence threshold that maximises the balanced accuracy of existence on ``scenes``
    (a tuning set), and that accuracy. Matchers whose confidence has no natural 0.5 point (the
    feature baseline's cosine) are compared fairly after calibrating each on the same episodes."""
    conf, exists = [], []
    for q in queries(scenes, directions, every, min_pixels, poses):
        res = q.match(matcher)
        for i in q.ids:
            conf.append(res.confidence.get(i, 0.0))
            exists.append(i in q.visible)
    c, y = np.asarray(conf), np.asarray(exists, bool)
    if not len(c):
        raise DataError("calibration: no query in the tuning episodes")
    candidates = np.unique(np.concatenate([[0.0], c]))
    scores = [balanced_accuracy(y, c > thr) for thr in candidates]
    best = int(np.nanargmax(scores))
    return float(candidates[best]), float(scores[best])


def _save_overlay(path: Path, src: np.ndarray, query: np.ndarray, tgt: np.ndarray, pred: np.ndarray,
                  truth: np.ndarray) -> None:
    """query (source) | prediction (target) | ground truth of the queried ids (target), one JPEG."""

    from corr_core.viz import overlay

    ids = [int(i) for i in np.unique(query) if i != 0]
    truth = np.where(np.isin(truth, ids), truth, 0)
    h = max(src.shape[0], tgt.shape[0])
    panels = [overlay(src, query), overlay(tgt, pred), overlay(tgt, truth)]
    panels = [cv2.copyMakeBorder(p, 0, h - p.shape[0], 0, 4, cv2.BORDER_CONSTANT) for p in panels]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_RGB2BGR))


def write_report(results: dict[str, dict[str, Any]], out: Path) -> str:
    """Writes ``metrics.json`` and ``table.md`` (one row per method and direction) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2, default=float))
    lines = ["| method | direction | IoU | location error | balanced accuracy | contour acc. | look-alike: right / wrong |",
             "|---|---|---|---|---|---|---|"]

    def cell(r: dict[str, Any], k: str) -> str:
        lo, hi = r["ci95"][k]
        return f"{r[k]:.3f} ({lo:.3f}..{hi:.3f})"

    for method, res in results.items():
        for direction, r in res.items():
            if not isinstance(r, dict) or "ci95" not in r:
                continue
            d = r["distractor"]
            look = f"{d['right']} / {d['lookalike']} of {d['queries']}" if d["queries"] else "-"
            lines.append(f"| {method} | {direction} | {cell(r, 'iou')} | {cell(r, 'location_error')} | "
                         f"{cell(r, 'balanced_accuracy')} | {cell(r, 'contour_accuracy')} | {look} |")
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(table)
    return table


def pcc_scorer(cfg: dict[str, Any], cache_dir: Path, device: str = "cpu", **settings: Any) -> Any:
    """``(checkpoint, name) -> metrics`` on the recipe's ``score`` episodes (rendered once into
    ``cache_dir/score_sim``), or None when ``score.episodes`` is 0: cross-view IoU, location error,
    balanced accuracy and the look-alike test, ego to every exo camera and back.

    Each model's existence threshold is calibrated on those episodes first (the balanced accuracy
    reported is at that threshold) and written into the checkpoint's metadata with the matcher
    settings it holds for (``settings``: ``verify``, ``one_to_one``; None or absent: the matcher's
    defaults, not those stored by an earlier scoring), and a second threshold for matches given the
    cameras' poses (``existence_threshold_geometry``) and one for poses and the source camera's
    depth (``existence_threshold_depth``), where :meth:`~corr_core.crossview.matcher.CrossViewMatcher.from_checkpoint` (and so
    ``corr_node``) finds them."""
    sc = cfg.get("score") or {}
    if int(sc.get("episodes", 0) or 0) <= 0:
        return None
    from corr_core.crossview.matcher import CALIBRATED_SETTINGS, CrossViewMatcher
    from corr_core.data.sim import generate_dataset
    from corr_core.io.checkpoint import update_checkpoint_metadata
    from corr_core.methods.pcc.scenes import sim_scenes
    from corr_core.proposals import build_proposer

    w, h = (cfg.get("data", {}).get("sim") or {}).get("size", [320, 240])
    root = cache_dir / "score_sim"
    generate_dataset(root, seed=int(sc.get("seed", 2000)), num_episodes=int(sc["episodes"]),
                     num_frames=int(sc.get("frames", 30)), size=(int(w), int(h)), bag=False, reuse=True,
                     hidden_per_camera=int(sc.get("hidden_per_camera", 1)))
    scenes = sim_scenes(root, resolution=f"{int(h)}p")
    exos = [c for c in scenes[0].cameras if c != "ego"]
    directions = [d for exo in exos for d in (("ego", exo), (exo, "ego"))]
    every = int(sc.get("every", 5))

    def score(checkpoint: Path, name: str) -> dict[str, Any]:
        given = {k: v for k, v in settings.items() if v is not None}
        matcher = CrossViewMatcher.from_checkpoint(checkpoint, device, stored=False, proposer=build_proposer("graph"),
                                                   **given)
        replay = ReplayMatcher(matcher)  # calibration and scoring see the same queries: match them once
        matcher.remember_predictions()  # and the network runs once per query for all three thresholds
        thresh, _ = calibrate_existence(replay, scenes, directions, every)
        replay.rewind()
        # and for a calibrated rig (corr_node's crossview_rig), without and with the anchor's depth
        geo_thresh, _ = calibrate_existence(matcher, scenes, directions, every, poses=SimPoses())
        depth_thresh, _ = calibrate_existence(matcher, scenes, directions, every, poses=SimPoses(depth=True))
        matcher.remember_predictions(False)
        update_checkpoint_metadata(checkpoint, existence_threshold=thresh, existence_threshold_geometry=geo_thresh,
                                   existence_threshold_depth=depth_thresh,
                                   existence_calibrated_on=(
            f"seeds {int(sc.get('seed', 2000))}+{int(sc['episodes'])} episodes, hidden_per_camera "
            f"{int(sc.get('hidden_per_camera', 1))}, every {every}"),
            matcher={k: getattr(matcher, k) for k in CALIBRATED_SETTINGS})
        res = evaluate_crossview(replay, scenes, directions, every, resamples=200, conf_thresh=thresh)
        keys = ("iou", "location_error", "balanced_accuracy", "contour_accuracy", "distractor")
        out = {d: {k: res[d][k] for k in keys} for d in res if "->" in d}
        out["existence_threshold"] = thresh
        out["existence_threshold_geometry"] = geo_thresh
        out["existence_threshold_depth"] = depth_thresh
        return out

    return score
