"""``corr eval crossview --tracks``: episodes played as corr_node's cross-view mode, scored as tracks.

Real sim renders; the matcher is either scripted from the renders' ground truth (so what is
measured is the playing and scoring) or the shipped PCC model (the command end to end).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from corr_core.cli import main
from corr_core.crossview.base import MatchResult, check_inputs
from corr_core.errors import ConfigError
from corr_core.evaluation.crossview_tracks import evaluate_tracks, score_shown_objects


def test_scores_only_the_objects_the_camera_shows_and_counts_pixels_of_the_others_apart():
    gt = np.zeros((3, 8, 8), np.uint8)
    gt[:, :4, :4] = 1
    gt[:, 4:, 4:] = 3  # object 2 is never shown here
    pred = gt.copy()
    perfect, phantom = score_shown_objects(gt, pred)
    assert perfect["J&F-Mean"] == pytest.approx(1.0) and phantom == 0
    pred[:, :2, 6:] = 2  # pixels given to the object the camera never shows
    with_phantom, phantom = score_shown_objects(gt, pred)
    assert phantom == 3 * 2 * 2 and with_phantom["J&F-Mean"] == pytest.approx(1.0)  # not an object here
    pred[:, 4:, 4:] = 0  # object 3 lost: half the shown objects
    half, _ = score_shown_objects(gt, pred)
    assert half["J-Mean"] == pytest.approx(0.5)


class TruthMatcher:
    """Answers with the target view's true masks (looked up by its pixels); notes the geometry."""

    def __init__(self, scenes):
        from corr_core.data.labels import read_label_png
        from corr_core.methods.pcc.scenes import read_rgb

        self.truth = {read_rgb(s.frames[c][t]).tobytes(): read_label_png(s.labels[c][t])
                      for s in scenes for c in s.cameras for t in range(s.num_frames)}
        self.geometries = []

    def match(self, src_rgb, src_labels, tgt_rgb, geometry=None):
        self.geometries.append(geometry)
        truth = self.truth[tgt_rgb.tobytes()]
        res = MatchResult(np.zeros(truth.shape, np.uint16))
        for i in check_inputs(src_rgb, src_labels, tgt_rgb):
            mask = truth == i
            res.existence[i], res.confidence[i], res.masks[i] = bool(mask.any()), float(mask.any()), mask
            res.labels[mask] = i
        return res


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from corr_core.testing import small_sim

    return small_sim(tmp_path_factory.mktemp("tracks_sim"), seed=3100, episodes=1, frames=4, objects=3)


def trackers(cams):
    from corr_core.api import build_camera_trackers, packaged_checkpoint

    return build_camera_trackers(cams, packaged_checkpoint())[0]


@pytest.mark.parametrize("geometry", [None, "depth"])
def test_a_true_matcher_gives_tracks_on_the_objects_with_no_stray_pixels(sim, geometry):
    from corr_core.methods.pcc.scenes import sim_scenes

    scenes = sim_scenes(sim, resolution="128p")
    matcher = TruthMatcher(scenes)
    lines = []
    result = evaluate_tracks(matcher, scenes, trackers, geometry=geometry, log=lines.append)
    exo = result["exo1"]
    assert exo["phantom_px"] == 0 and exo["matches"] == 1  # matched once, and nothing goes missing after
    # the same tracks as exo1 anchored by hand on its own frame 0 (what the true matcher hands it)
    from corr_core.data.labels import read_label_png
    from corr_core.methods.pcc.scenes import read_rgb

    scene, hand = scenes[0], trackers(["exo1"])["exo1"]
    gt = np.stack([read_label_png(p) for p in scene.labels["exo1"]])
    pred = np.stack([hand.step(read_rgb(scene.frames["exo1"][t]), gt[0] if t == 0 else None)
                     for t in range(scene.num_frames)])
    assert exo["jf"] == pytest.approx(score_shown_objects(gt, pred)[0]["J&F-Mean"], abs=1e-9)
    assert exo["ci95"][0] <= exo["jf"] <= exo["ci95"][1] and len(exo["episodes"]) == 1 and "ego" not in result
    assert (matcher.geometries[0] is None) == (geometry is None)  # the rig's geometry reached the matcher
    if geometry == "depth":
        assert matcher.geometries[0].src_depth is not None
    assert len(lines) == 1 and "exo1: J&F" in lines[0]
    with pytest.raises(ConfigError, match="anchor camera 'wrist'"):
        evaluate_tracks(matcher, scenes, trackers, anchor="wrist")


def test_the_command_plays_the_shipped_model_and_refuses_what_tracks_do_not_take(sim, tmp_path, capsys):
    import corr_core
    from corr_core.crossview import SHIPPED_PCC

    pcc = Path(corr_core.__file__).parent / "assets" / "checkpoints" / f"{SHIPPED_PCC}.safetensors"
    common = ["eval", "crossview", "--sim", str(sim), "--resolution", "128p", "--tracks"]
    assert main([*common, "--pcc", str(pcc), "--name", "shipped", "--out", str(tmp_path / "t")]) == 0
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())["shipped"]
    assert 0.0 <= metrics["exo1"]["jf"] <= 1.0 and metrics["settings"]["retry_every"] == 10
    table = (tmp_path / "t" / "table.md").read_text()
    assert table in capsys.readouterr().out and "| shipped | exo1 |" in table
    assert main([*common, "--colour-stats", "--out", str(tmp_path / "c")]) == 2
    assert "--tracks plays the node's cross-view mode: give its PCC model (--pcc)" in capsys.readouterr().err
    assert main([*common, "--pcc", str(pcc), "--calibrate", str(sim), "--out", str(tmp_path / "k")]) == 2
    assert "--tracks does not take --calibrate" in capsys.readouterr().err
