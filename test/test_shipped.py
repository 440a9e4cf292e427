"""The checkpoints the package ships, one test run per checkpoint (timm's registry-wide tests):
each loads by its path alone, names the method and recipe that made it, tracks, and exports to an
ONNX graph that onnxruntime runs like PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "corr_core" / "assets" / "checkpoints"
FEATURE_NETWORKS = sorted(p.stem for p in SHIPPED.glob("*.safetensors") if not p.stem.startswith("pcc_"))


def test_every_temporal_method_that_trained_here_ships_its_network():
    methods = {json.loads((SHIPPED / f"{name}.json").read_text())["method"] for name in FEATURE_NETWORKS}
    assert {"fc", "corrflow", "mer", "hvc", "sfc"} <= methods


@pytest.mark.parametrize("name", FEATURE_NETWORKS)
def test_shipped_network_loads_by_path_tracks_and_exports(name, tmp_path):
    from corr_core.api import build_tracker, export_checkpoint_onnx, load_feature_model
    from corr_core.config import load_training_config

    meta = json.loads((SHIPPED / f"{name}.json").read_text())
    recipe = ROOT / "training" / f"{meta['method']}_cpu.yaml"
    assert recipe.is_file(), f"{name}: no recipe {recipe.name} reproduces it"
    assert meta["config"]["model"] == load_training_config(recipe)["model"]
    assert (SHIPPED / f"{name}.train_log.csv").is_file()
    model, loaded = load_feature_model(SHIPPED / name)
    assert loaded["arch"] == meta["arch"] and loaded["method"] == meta["method"]
    tracker = build_tracker(str(SHIPPED / name), {"topk": 5, "context": 2, "radius": 4.0})
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    masks = np.zeros((64, 96), np.uint8)
    masks[16:40, 24:56] = 4
    assert np.array_equal(tracker.step(frame, masks), masks)
    out = tracker.step(frame)  # the same frame again: the object stays where it was
    assert ((out == 4) == (masks == 4)).mean() > 0.95
    report = export_checkpoint_onnx(SHIPPED / name, tmp_path / f"{name}.onnx", size=(64, 96))
    assert report["metadata"]["method"] == meta["method"]


def test_shipped_pcc_model_is_what_its_recipe_makes_with_the_calibration_it_stores():
    """The cross-view model ships with the recipe that reproduces it (every setting of the stages
    that made it) and the existence threshold and matcher settings calibrated for it."""
    from corr_core.config import load_training_config
    from corr_core.crossview.matcher import CrossViewMatcher

    name = "pcc_resnet18_l2_prior"
    meta = json.loads((SHIPPED / f"{name}.json").read_text())
    cfg = load_training_config(ROOT / "training" / "pcc_cpu.yaml")
    for key in ("model", "data", "pretrain", "pseudolabel", "correspond", "iterations", "score"):
        assert meta["config"][key] == cfg[key], f"{name}: its {key!r} settings are not training/pcc_cpu.yaml's"
    assert meta["method"] == "pcc_correspond" and meta["arch"] == cfg["correspond"]["arch"] == name
    assert meta["step"] == cfg["correspond"]["train"]["iters"]
    matcher = CrossViewMatcher.from_checkpoint(SHIPPED / name)
    assert matcher.existence_threshold == pytest.approx(meta["existence_threshold"])
    # and the threshold for matches given a calibrated rig (corr_node's crossview_rig)
    assert matcher.geometry_threshold == pytest.approx(meta["existence_threshold_geometry"])
    # and with the anchor camera's depth too (crossview_depth)
    assert matcher.depth_threshold == pytest.approx(meta["existence_threshold_depth"])
    assert {"verify": matcher.verify, "one_to_one": matcher.one_to_one} == meta["matcher"]
