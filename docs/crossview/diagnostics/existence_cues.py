"""Diagnostic (not shipped): per-query existence cues of PCC models on the TUNING episodes, and how
well a class-balanced logistic combination of them separates visible from absent objects
(5-fold over episodes) against the calibrated confidence alone. docs/results.md, cross-view
section, "Why existence from images stays near chance".

    corr generate sim --out runs/xv_tune10b --seed 2010 --episodes 10 --frames 30 --hidden-per-camera 1 --no-bag
    python docs/crossview/diagnostics/existence_cues.py runs/pcc_cpu/iter_1/model.safetensors \\
        runs/pcc_cpu/iter_2/model.safetensors
"""

import sys

import numpy as np
import torch

import corr_core.crossview.matcher as M
from corr_core.evaluation.crossview import _lookalikes
from corr_core.evaluation.crossview_queries import queries
from corr_core.methods.pcc.scenes import sim_scenes
from corr_core.proposals import build_proposer

SCENES = ("runs/xv_tune10", "runs/xv_tune10b")  # seeds 2000-2019: tuning only
DIRECTIONS = [("ego", "exo1"), ("exo1", "ego")]
CUES = ("log_odds", "colour", "log_soft_iou", "margin", "map_max", "map_ratio")


class Spy(M.CrossViewMatcher):
    """The matcher, remembering what its last match computed on the way (also used by
    layout_assignment.py)."""

    seen: dict = {}

    def _predict(self, *args):
        prob, exist = super()._predict(*args)
        self.seen.update(exist=exist, map_max=prob.reshape(len(prob), -1).max(1), mass=prob.reshape(len(prob), -1).sum(1))
        return prob, exist

    def _soft_iou(self, prob, proposals):
        self.seen["props"] = proposals
        self.seen["soft_iou"] = M.CrossViewMatcher._soft_iou(prob, proposals)
        return self.seen["soft_iou"]

    def _assign(self, score):
        self.seen["score"], self.seen["choice"] = score, super()._assign(score)
        return self.seen["choice"]


def cues(checkpoint: str, scenes: list) -> dict[str, np.ndarray]:
    m = Spy.from_checkpoint(checkpoint, stored=False, proposer=build_proposer("graph"))
    rows = []
    for q in queries(scenes, DIRECTIONS, 5, 20):
        m.seen.clear()
        res = q.match(m)
        if "score" not in m.seen or len(m.seen["choice"]) != len(q.ids):
            continue  # no proposal in the target
        s, choice = m.seen["score"], m.seen["choice"]
        twins = _lookalikes(q.scene)
        for k, i in enumerate(q.ids):
            j, ranked = choice[k], np.sort(s[k])[::-1]
            e = float(np.clip(m.seen["exist"][k], 1e-4, 1 - 1e-4))
            si = float(m.seen["soft_iou"][k, j])
            rows.append([q.episode, int(i in q.visible), int(bool(twins.get(i, set()) & q.visible)), res.confidence[i],
                         np.log(e / (1 - e)), np.sqrt(s[k, j] / max(si, 1e-9)), np.log(si + 1e-3),
                         ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0), m.seen["map_max"][k],
                         np.log((m.seen["mass"][k] + 1) / ((q.labels == i).sum() + 1))])
    a = np.array(rows, float)
    return {"episode": a[:, 0].astype(int), "visible": a[:, 1].astype(int), "twin_in_view": a[:, 2].astype(bool),
            "confidence": a[:, 3], "X": a[:, 4:]}


def balanced_accuracy(y, pred):
    return 0.5 * (pred[y == 1].mean() + (~pred[y == 0]).mean())


def best_threshold(c, y):
    cand = np.unique(np.r_[0.0, c])
    return cand[int(np.argmax([balanced_accuracy(y, c > t) for t in cand]))]


def logistic(X, y, l2=1.0, steps=50):
    """Class-balanced L2 logistic regression (Newton steps); weights with the bias last."""
    X1, w = np.c_[X, np.ones(len(X))], np.zeros(X.shape[1] + 1)
    sw = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    reg = np.diag(np.r_[np.ones(X.shape[1]), 0.0]) / l2
    for _ in range(steps):
        p = 1 / (1 + np.exp(-X1 @ w))
        H = (X1 * (sw * p * (1 - p))[:, None]).T @ X1 + reg + 1e-6 * np.eye(len(w))
        w -= np.linalg.solve(H, X1.T @ (sw * (p - y)) + reg @ w)
    return w


def cross_validated(d, folds=5):
    y, ep, X = d["visible"], d["episode"], d["X"]
    plain, combined = np.zeros(len(y), bool), np.zeros(len(y), bool)
    for f in range(folds):
        tr, te = ep % folds != f, ep % folds == f
        plain[te] = d["confidence"][te] > best_threshold(d["confidence"][tr], y[tr])
        mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-9
        w = logistic((X[tr] - mu) / sd, y[tr])
        s = 1 / (1 + np.exp(-np.c_[(X - mu) / sd, np.ones(len(X))] @ w))
        combined[te] = s[te] > best_threshold(s[tr], y[tr])
    return balanced_accuracy(y, plain), balanced_accuracy(y, combined)


if __name__ == "__main__":
    torch.set_num_threads(2)
    scenes = [s for root in SCENES for s in sim_scenes(root)]
    for checkpoint in sys.argv[1:]:
        d = cues(checkpoint, scenes)
        absent = d["visible"] == 0
        plain, combined = cross_validated(d)
        print(f"{checkpoint}: {len(absent)} queries, {absent.sum()} absent from the target, "
              f"{(absent & d['twin_in_view']).sum()} of those with the look-alike in view; mean confidence "
              f"visible {d['confidence'][~absent].mean():.2f}, absent with twin "
              f"{d['confidence'][absent & d['twin_in_view']].mean():.2f}, absent without "
              f"{d['confidence'][absent & ~d['twin_in_view']].mean():.2f}; balanced accuracy (5-fold over "
              f"episodes) confidence {plain:.3f}, logistic over {', '.join(CUES)} {combined:.3f}")
