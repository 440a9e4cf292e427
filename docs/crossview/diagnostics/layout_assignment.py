"""Diagnostic (not shipped): can the layout of the other objects tell look-alike twins apart from
images alone? On the TUNING episodes (seeds 2000-2019), for PCC's images-only matches.

1. Oracle: with ground-truth masks in both views, a similarity transform (rotation, scale,
   translation) fitted from the source to the target object centroids fits worse when a twin
   pair is swapped than when it is not: the layout *would* tell twins apart.
2. Layout assignment: the matcher's one-to-one assignment, rescored over the top-k proposals
   per object by sum(log(score + 0.01)) - sum(min(r^2 / (2 sigma^2), cap)), r the residual of each
   object's centroid under the best similarity fitted through two of them (RANSAC over pairs; centroids
   in units of the image diagonal). Reports IoU, balanced accuracy (the shipped threshold) and
   the look-alike test right / wrong, against the shipped assignment.

    corr generate sim --out runs/xv_tune10 --seed 2000 --episodes 10 --frames 30 --hidden-per-camera 1 --no-bag
    corr generate sim --out runs/xv_tune10b --seed 2010 --episodes 10 --frames 30 --hidden-per-camera 1 --no-bag
    python docs/crossview/diagnostics/layout_assignment.py corr_core/assets/checkpoints/pcc_resnet18_l2_prior
"""

import itertools
import sys

import numpy as np
from existence_cues import Spy  # the matcher, remembering its proposals, scores and existence

from corr_core.evaluation.crossview import _lookalikes, _overlap
from corr_core.evaluation.crossview_queries import queries
from corr_core.methods.pcc.appearance import colour_descriptors
from corr_core.methods.pcc.scenes import sim_scenes
from corr_core.proposals import build_proposer

SCENES = ("runs/xv_tune10", "runs/xv_tune10b")  # seeds 2000-2019: tuning only
DIRECTIONS = [("ego", "exo1"), ("exo1", "ego")]


def centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()]) if len(xs) else np.array([np.nan, np.nan])


def similarity(P, T, w):
    """``P`` mapped by the similarity fitted to ``P -> T`` with weights ``w`` (least squares)."""
    w = w / w.sum()
    mp, mt = w @ P, w @ T
    Pc, Tc = P - mp, T - mt
    n = max(float(w @ (Pc**2).sum(1)), 1e-12)
    a = float(w @ (Pc[:, 0] * Tc[:, 0] + Pc[:, 1] * Tc[:, 1])) / n
    b = float(w @ (Pc[:, 0] * Tc[:, 1] - Pc[:, 1] * Tc[:, 0])) / n
    return Pc @ np.array([[a, -b], [b, a]]).T + mt


def layout_cost(P, T, sigma, cap):
    best = np.inf
    for i, j in itertools.combinations(range(len(P)), 2):
        w = np.zeros(len(P))
        w[[i, j]] = 1
        r2 = ((similarity(P, T, w) - T) ** 2).sum(1)
        best = min(best, float(np.minimum(r2 / (2 * sigma**2), cap).sum()))
    return best


def layout_choice(row, top, sigma, cap):
    s, base = row["score"], row["choice"]
    q, n = s.shape
    if q < 3 or n < q:
        return base
    P, T = row["src_c"], row["tgt_c"]
    best, best_j = base, -np.inf
    for combo in list(itertools.product(*np.argsort(-s, 1)[:, :top])) + [tuple(base)]:
        if len(set(combo)) < q:
            continue
        c = np.array(combo)
        j = np.log(s[np.arange(q), c] + 1e-2).sum() - layout_cost(P, T[c], sigma, cap)
        if j > best_j:
            best, best_j = c, j
    return best


def collect(checkpoint, scenes):
    m = Spy.from_checkpoint(checkpoint, proposer=build_proposer("graph"))
    rows, oracle = [], {d: [0, 0] for d in ("ego->exo1", "exo1->ego")}
    for q in queries(scenes, DIRECTIONS, 5, 20):
        look = _lookalikes(q.scene)
        both = sorted(set(q.ids) & q.visible)
        for a, b in itertools.combinations(both, 2):  # the oracle: true centroids, twins swapped or not
            others = [i for i in both if i not in (a, b)]
            if b in look.get(a, set()) and others:
                P = np.array([centroid(q.labels == i) for i in [a, b, *others]])
                T = np.array([centroid(q.tgt_truth == i) for i in [a, b, *others]])
                swapped = T.copy()
                swapped[[0, 1]] = T[[1, 0]]
                fit = [((similarity(P, X, np.ones(len(P))) - X) ** 2).sum() for X in (T, swapped)]
                oracle[q.direction][0] += fit[0] < fit[1]
                oracle[q.direction][1] += 1
        m.seen.clear()
        res = q.match(m)
        if "score" not in m.seen:
            continue
        props, k = m.seen["props"], len(q.ids)
        right, twin, has_twin = np.zeros((k, len(props))), np.zeros((k, len(props))), np.zeros(k, bool)
        for r, i in enumerate(q.ids):
            if i in q.visible:
                right[r] = [_overlap(p, q.tgt_truth == i) for p in props]
                tw = look.get(i, set()) & q.visible
                if tw:
                    has_twin[r] = True
                    twin[r] = [max(_overlap(p, q.tgt_truth == j) for j in tw) for p in props]
        src = np.stack([q.labels == i for i in q.ids])
        rows.append(dict(direction=q.direction, visible=np.array([i in q.visible for i in q.ids]),
                         score=m.seen["score"], choice=m.seen["choice"], exist=m.seen["exist"],
                         colour=colour_descriptors(q.src_rgb, src) @ colour_descriptors(q.tgt_rgb, props).T,
                         right=right, twin=twin, has_twin=has_twin,
                         src_c=np.array([centroid(x) for x in src]) / np.hypot(*q.src_rgb.shape[:2]),
                         tgt_c=np.array([centroid(p) for p in props]) / np.hypot(*q.tgt_rgb.shape[:2]),
                         conf=np.array([res.confidence[i] for i in q.ids])))
    return rows, oracle, m.existence_threshold


def metrics(rows, choose, threshold):
    out = {}
    for d in ("ego->exo1", "exo1->ego"):
        iou, right, wrong, y, pred = [], 0, 0, [], []
        for row in (r for r in rows if r["direction"] == d):
            c = choose(row)
            k = np.arange(len(c))
            conf = row["exist"] * np.clip(row["colour"][k, c], 0, 1)  # the matcher's confidence (images)
            iou += list(row["right"][k, c][row["visible"]])
            for q in np.flatnonzero(row["has_twin"]):
                r, t = row["right"][q, c[q]], row["twin"][q, c[q]]
                right += int(r > t)
                wrong += int(t > r and t > 0)
            y += list(row["visible"])
            pred += list(conf > threshold)
        y, pred = np.array(y), np.array(pred)
        out[d] = f"IoU {np.mean(iou):.3f} BA {0.5 * (pred[y].mean() + (~pred[~y]).mean()):.3f} look-alikes {right}:{wrong}"
    return out


def main(checkpoint):
    rows, oracle, threshold = collect(checkpoint, [s for root in SCENES for s in sim_scenes(root)])
    print("oracle (true masks): the unswapped twins fit better in", {d: f"{a}/{n}" for d, (a, n) in oracle.items()})
    for row in rows[:20]:  # the recomputed confidence is the matcher's
        k = np.arange(len(row["choice"]))
        assert np.allclose(row["exist"] * np.clip(row["colour"][k, row["choice"]], 0, 1), row["conf"], atol=1e-4)
    print("shipped assignment", metrics(rows, lambda r: r["choice"], threshold))
    for top in (3, 4):
        for sigma in (0.03, 0.05, 0.08):
            for cap in (2.0, 4.0, 8.0):
                print(f"layout top {top} sigma {sigma} cap {cap}",
                      metrics(rows, lambda r, t=top, s=sigma, c=cap: layout_choice(r, t, s, c), threshold), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "corr_core/assets/checkpoints/pcc_resnet18_l2_prior")
