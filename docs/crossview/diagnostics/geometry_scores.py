"""Diagnostic (not shipped): other ways for PCC to score proposals with geometry, on TUNING episodes
only (thresholds calibrated on seeds 2000-2009, scored on seeds 2010-2019), poses + RGB-D.
docs/results.md, cross-view section, "Letting geometry choose".

    python docs/crossview/diagnostics/geometry_scores.py corr_core/assets/checkpoints/pcc_resnet18_l2_prior
"""

import sys

import numpy as np
import torch

from corr_core.crossview.matcher import CrossViewMatcher
from corr_core.evaluation.crossview import SimPoses, calibrate_existence, evaluate_crossview
from corr_core.methods.pcc.scenes import sim_scenes
from corr_core.proposals import build_proposer

VARIANTS = {  # the network's term in a proposal's score (times colour^2 x band)
    "soft IoU (kept)": lambda s: s,
    "soft IoU + 0.05": lambda s: s + 0.05,
    "soft IoU + 0.2": lambda s: s + 0.2,
    "sqrt(soft IoU)": np.sqrt,
    "none (colour and geometry choose)": np.ones_like,
}


class Variant(CrossViewMatcher):
    """The matcher with another network term."""

    term = staticmethod(lambda s: s)

    def _soft_iou(self, prob, proposals):
        return self.term(CrossViewMatcher._soft_iou(prob, proposals))


if __name__ == "__main__":
    torch.set_num_threads(2)
    calibration, scoring = sim_scenes("runs/xv_tune10"), sim_scenes("runs/xv_tune10b")
    directions, poses = [("ego", "exo1"), ("exo1", "ego")], SimPoses(depth=True)
    matcher = Variant.from_checkpoint(sys.argv[1], stored=False, proposer=build_proposer("graph"))
    matcher.remember_predictions()  # one network pass per query for every variant
    for name, term in VARIANTS.items():
        matcher.term = term
        threshold, _ = calibrate_existence(matcher, calibration, directions, poses=poses)
        r = evaluate_crossview(matcher, scoring, directions, conf_thresh=threshold, resamples=10, poses=poses)
        cells = [f"{r[d]['iou']:.3f} / {r[d]['balanced_accuracy']:.3f} / "
                 f"{r[d]['distractor']['right']}:{r[d]['distractor']['lookalike']}" for d in ("ego->exo1", "exo1->ego")]
        print(f"{name:36s} threshold {threshold:.3f}  IoU / BA / look-alikes right:wrong  {cells[0]}   {cells[1]}")
