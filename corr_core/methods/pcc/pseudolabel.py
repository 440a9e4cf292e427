"""Cycle-consistent pseudo-labels between the proposals of two views (PCC stage 2, seed 000).

For a pair of views with proposals ``O1,i`` and ``O2,j`` and similarity matrices ``S12[i, j] =
Sim(H_i(1->2), O2,j)`` and ``S21[j, i] = Sim(H_j(2->1), O1,i)`` (:mod:`.heatmaps`):

    P_j(1->2) = argmax_i S12[i, j]        P_i(2->1) = argmax_j S21[j, i]

and ``(i, j)`` is a pseudo-label when the two agree (``P_j(1->2) = i`` and ``P_i(2->1) = j``) and
both similarities reach ``min_sim``. The result of a run is a folder::

    proposals/<scene>/<cam>/<t>.npz   the proposals of every view used (reused by later iterations)
    pseudolabels.jsonl                one line per pair: {"src", "tgt", "matches": [[i, j, s12, s21], ...]}
    summary.json                      counts, and the precision against ground truth where it exists

A pseudo-label is *correct* (simulated data) when both proposals cover mostly (>= half of their
pixels) the same object id.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from corr_core.errors import ConfigError, DataError
from corr_core.geometry import CameraPose, ViewGeometry, epipolar_weights
from corr_core.methods.pcc.scenes import Pair, Scene, View, fit_size, read_rgb
from corr_core.proposals.base import Proposals, Proposer

log = logging.getLogger(__name__)

#: what pseudo-labelling may use besides images (``pseudolabel.geometry``)
GEOMETRY = ("none", "poses", "depth")

Similarity = Callable[[np.ndarray, Proposals, np.ndarray, Proposals], np.ndarray]


def cycle_matches(s12: np.ndarray, s21: np.ndarray, min_sim: float = 0.0,
                  min_margin: float = 0.0) -> list[tuple[int, int, float, float]]:
    """Cycle-consistent pairs ``(i, j, S12[i, j], S21[j, i])`` (module docstring).

    Args:
        s12: ``(N1, N2)`` similarities of the source heatmaps to the target proposals.
        s21: ``(N2, N1)`` similarities of the target heatmaps to the source proposals.
        min_sim: both similarities must reach it.
        min_margin: least lead of each similarity over the runner-up of its row and column
            (0: no distinctiveness test).
    """
    n1, n2 = s12.shape
    if s21.shape != (n2, n1):
        raise ValueError(f"similarity matrices {s12.shape} and {s21.shape} do not belong to one pair")
    if n1 == 0 or n2 == 0:
        return []
    best_src_for = s12.argmax(0)  # P_j(1->2), (N2,)
    best_tgt_for = s21.argmax(0)  # P_i(2->1), (N1,)
    out = []
    for j in range(n2):
        i = int(best_src_for[j])
        if int(best_tgt_for[i]) == j and s12[i, j] >= min_sim and s21[j, i] >= min_sim:
            if min_margin > 0 and min(_lead(s12, i, j), _lead(s21, j, i)) < min_margin:
                continue
            out.append((i, j, float(s12[i, j]), float(s21[j, i])))
    return out


def _lead(s: np.ndarray, r: int, c: int) -> float:
    """How far ``s[r, c]`` exceeds every other entry of its row and column (inf when alone)."""
    others = np.concatenate([np.delete(s[r], c), np.delete(s[:, c], r)])
    return float(s[r, c] - others.max()) if len(others) else float("inf")


def dominant_ids(props: Proposals, labels: np.ndarray, min_fraction: float = 0.5) -> np.ndarray:
    """The ground-truth id covering at least ``min_fraction`` of each proposal, else 0: ``(N,)``."""
    out = np.zeros(len(props), np.int64)
    for k in range(len(props)):
        ids, counts = np.unique(labels[props.masks[k]], return_counts=True)
        if len(ids):
            best = int(np.argmax(counts))
            if counts[best] >= min_fraction * counts.sum():
                out[k] = int(ids[best])
    return out


class ViewStore:
    """Canonical images (resized/cropped to ``size``), ground truth and cached proposals of views.

    Args:
        scenes: the recordings.
        size: ``(H, W)`` every view is brought to (centre crop), multiples of 16.
        proposer: makes proposals (ignored for views already cached in ``cache``).
        cache: folder of ``<scene>/<cam>/<t>.npz`` proposal files (written when missing).
    """

    def __init__(self, scenes: Sequence[Scene], size: tuple[int, int], proposer: Proposer | None,
                 cache: Path | None) -> None:
        self.scenes = {s.name: s for s in scenes}
        self.size = (int(size[0]), int(size[1]))
        self.proposer = proposer
        self.cache = cache
        self._recent: OrderedDict[str, Proposals] = OrderedDict()  # small LRU of loaded proposals

    def rgb(self, view: View) -> np.ndarray:
        return fit_size(read_rgb(self.scenes[view.scene].frames[view.cam][view.t]), self.size)

    def geometry(self, pair: Pair, depth: bool = False) -> ViewGeometry | None:
        """Both cameras of a cross-view pair at the canonical size, from the scene's calibration
        (sim episodes), with the source view's depth if asked and recorded; None for a scene
        without calibration or a pair of one camera (objects move between its instants)."""
        import cv2

        scene = self.scenes[pair.src.scene]
        if not pair.cross_view or not (scene.meta.get("cameras") or {}).get(pair.src.cam):
            return None
        src, tgt = (CameraPose.from_sim(scene.meta, v.cam, v.t).fitted(self.size) for v in (pair.src, pair.tgt))
        src_depth = None
        if depth and scene.depth.get(pair.src.cam):
            src_depth = fit_size(scene.depth_m(pair.src.cam, pair.src.t), self.size, interpolation=cv2.INTER_NEAREST)
        return ViewGeometry(src, tgt, src_depth)

    def labels(self, view: View) -> np.ndarray | None:
        """Ground-truth ids (simulated scenes), brought to the canonical size; None without."""
        from corr_core.data.labels import read_label_png

        files = self.scenes[view.scene].labels.get(view.cam)
        if not files:
            return None
        import cv2

        return fit_size(read_label_png(files[view.t]), self.size, interpolation=cv2.INTER_NEAREST)

    def proposals(self, view: View) -> Proposals:
        """The view's proposals: from the cache (memory, then file), else made and saved."""
        key = view.key()
        if key in self._recent:
            self._recent.move_to_end(key)
            return self._recent[key]
        props = self._load_or_propose(view)
        self._recent[key] = props
        if len(self._recent) > 64:
            self._recent.popitem(last=False)
        return props

    def _load_or_propose(self, view: View) -> Proposals:
        path = None if self.cache is None else self.cache / view.scene / view.cam / f"{view.t:05d}.npz"
        if path is not None and path.is_file():
            with np.load(path) as data:
                return Proposals.from_arrays(dict(data), str(path))
        if self.proposer is None:
            raise DataError(f"no cached proposals for {view.key()} in {self.cache} and no proposer given")
        props = self.proposer.propose(self.rgb(view), labels=self.labels(view))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **props.to_arrays())
        return props


def pairs_for_labelling(scenes: Sequence[Scene], every: int = 5, gap: int = 10,
                        temporal: bool = True) -> list[Pair]:
    """Deterministic pairs: every ``every``-th instant, each unordered pair of cameras, and (with
    ``temporal``) each camera with itself ``gap`` frames later."""
    out = []
    for scene in scenes:
        cams, n = scene.cameras, scene.num_frames
        for t in range(0, n, max(1, int(every))):
            for a in range(len(cams)):
                for b in range(a + 1, len(cams)):
                    out.append(Pair(View(scene.name, cams[a], t), View(scene.name, cams[b], t)))
                if temporal and t + gap < n:
                    out.append(Pair(View(scene.name, cams[a], t), View(scene.name, cams[a], t + gap)))
    return out


def _view_dict(v: View) -> dict[str, Any]:
    return {"scene": v.scene, "cam": v.cam, "t": v.t}


def label_pairs(pairs: Iterable[Pair], store: ViewStore, similarity: Similarity, out_dir: str | Path,
                min_sim: float = 0.0, max_proposals: int | None = None, min_margin: float = 0.0,
                geometry: str = "none") -> dict[str, Any]:
    """Pseudo-labels every pair; writes ``pseudolabels.jsonl`` and ``summary.json`` into ``out_dir``.

    Args:
        pairs: the view pairs.
        store: images, proposals (cached under ``out_dir/proposals`` unless the store has a cache).
        similarity: ``(src, src_props, tgt, tgt_props) -> S[i, j]`` (a heatmaps object's method).
        out_dir: output folder.
        min_sim: least similarity in both directions.
        max_proposals: only the best-scored proposals of each view take part.
        min_margin: least lead of a match over the runner-ups (``cycle_matches``).
        geometry: ``"poses"``: where the scene records its cameras' calibration (sim episodes),
            cross-view similarities are weighted by how well each proposal lies on the other's
            epipolar band (:mod:`corr_core.geometry`), which keeps look-alikes from
            pairing up; ``"depth"``: with the source views' depth too; ``"none"``: images only.

    Returns:
        The summary (pairs, matches, and precision where ground truth exists).
    """
    if geometry not in GEOMETRY:
        raise ConfigError(f"pseudolabel.geometry must be one of {GEOMETRY}, got {geometry!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = list(pairs)
    stats = {"pairs": 0, "matches": 0, "cross_view_matches": 0, "with_truth": 0, "correct": 0,
             "cross_view_with_truth": 0, "cross_view_correct": 0, "with_geometry": 0}
    started = time.time()
    with open(out_dir / "pseudolabels.jsonl.tmp", "w") as fh:
        for k, pair in enumerate(pairs):
            full = [store.proposals(v) for v in (pair.src, pair.tgt)]
            order = [np.argsort(-p.scores, kind="stable")[:max_proposals] if max_proposals else np.arange(len(p))
                     for p in full]
            props = [p.subset(o) for p, o in zip(full, order, strict=True)]
            rgb = [store.rgb(v) for v in (pair.src, pair.tgt)]
            s12 = similarity(rgb[0], props[0], rgb[1], props[1])
            s21 = similarity(rgb[1], props[1], rgb[0], props[0])
            if geometry != "none" and len(props[0]) and len(props[1]):
                g12 = store.geometry(pair, geometry == "depth")
                g21 = store.geometry(Pair(pair.tgt, pair.src), geometry == "depth")
                if g12 is not None and g21 is not None:
                    s12 = s12 * epipolar_weights(g12, props[0].masks, props[1].masks)
                    s21 = s21 * epipolar_weights(g21, props[1].masks, props[0].masks)
                    stats["with_geometry"] += 1
            matches = cycle_matches(s12, s21, min_sim, min_margin)
            # indices into the full (cached) proposal lists of the two views
            record: dict[str, Any] = {"src": _view_dict(pair.src), "tgt": _view_dict(pair.tgt), "matches": [
                [int(order[0][i]), int(order[1][j]), round(a, 5), round(b, 5)] for i, j, a, b in matches]}
            truth = [store.labels(v) for v in (pair.src, pair.tgt)]
            stats["pairs"] += 1
            stats["matches"] += len(matches)
            stats["cross_view_matches"] += len(matches) if pair.cross_view else 0
            if truth[0] is not None and truth[1] is not None and matches:
                ids = [dominant_ids(p, t) for p, t in zip(props, truth, strict=True)]
                ok = [bool(ids[0][i] != 0 and ids[0][i] == ids[1][j]) for i, j, _, _ in matches]
                record["correct"] = ok
                stats["with_truth"] += len(ok)
                stats["correct"] += sum(ok)
                if pair.cross_view:
                    stats["cross_view_with_truth"] += len(ok)
                    stats["cross_view_correct"] += sum(ok)
            fh.write(json.dumps(record) + "\n")
            if (k + 1) % 20 == 0 or k + 1 == len(pairs):
                log.info("pseudo-labels: %d/%d pairs, %d matches (%.1f s)", k + 1, len(pairs), stats["matches"],
                         time.time() - started)
    (out_dir / "pseudolabels.jsonl.tmp").replace(out_dir / "pseudolabels.jsonl")
    for prefix in ("", "cross_view_"):
        n = stats[f"{prefix}with_truth"]
        stats[f"{prefix}precision"] = stats[f"{prefix}correct"] / n if n else None
    stats["seconds"] = round(time.time() - started, 1)
    (out_dir / "summary.json").write_text(json.dumps(stats, indent=2))
    return stats


def read_pseudolabels(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``pseudolabels.jsonl`` (a folder or the file).

    Raises:
        DataError: missing or malformed file (the line is named).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "pseudolabels.jsonl"
    if not path.is_file():
        raise DataError(f"pseudo-labels not found: {path} (run `corr pcc pseudolabel` first)")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rec = json.loads(line)
            for side in ("src", "tgt"):
                rec[side] = View(str(rec[side]["scene"]), str(rec[side]["cam"]), int(rec[side]["t"]))
            rec["matches"] = [(int(m[0]), int(m[1])) for m in rec["matches"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"{path}:{n}: not a pseudo-label record ({exc})") from exc
        records.append(rec)
    return records


def merge_pseudolabels(rounds: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The records of several pseudo-labelling rounds as one set, oldest round first.

    Records of the same view pair are merged: a match of a later round replaces the earlier matches
    that share either of its proposals (a later model corrects an earlier pairing), the others are
    kept. Used with ``pseudolabel.accumulate``: iteration ``k`` trains on rounds ``0 .. k-1``.
    """
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for records in rounds:
        for rec in records:
            key = (rec["src"].key(), rec["tgt"].key())
            if key not in merged:
                merged[key] = {"src": rec["src"], "tgt": rec["tgt"], "matches": list(rec["matches"])}
                continue
            new = list(rec["matches"])
            taken_i, taken_j = {i for i, _ in new}, {j for _, j in new}
            kept = [(i, j) for i, j in merged[key]["matches"] if i not in taken_i and j not in taken_j]
            merged[key]["matches"] = kept + new
    return list(merged.values())
