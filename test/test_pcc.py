"""PCC on tiny models: the network, colourisation and correspondence training, heatmaps, cycle-
consistent pseudo-labels, their precision against simulated ground truth, and the iteration loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from corr_core.errors import CheckpointError, ConfigError, DataError, ShapeMismatchError
from corr_core.methods.pcc import load_pcc_model
from corr_core.methods.pcc.heatmaps import ColourHeatmaps, ModelHeatmaps, recolour
from corr_core.methods.pcc.loss_mask import CorrespondenceLoss, dice_loss
from corr_core.methods.pcc.model import build_pcc_model
from corr_core.methods.pcc.pseudolabel import (
    ViewStore,
    cycle_matches,
    dominant_ids,
    label_pairs,
    pairs_for_labelling,
    read_pseudolabels,
)
from corr_core.methods.pcc.scenes import PairSampler, View, sim_scenes
from corr_core.proposals import build_proposer

SIZE = (128, 160)


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    from corr_core.testing import small_sim

    return small_sim(tmp_path_factory.mktemp("pcc_sim"))


@pytest.fixture(scope="module")
def tiny_cfg():
    return {
        "seed": 0,
        "model": {"arch": "pcc_tiny"},
        "data": {"size": list(SIZE), "cross_view": 0.7, "gap": [2, 3]},
        "pretrain": {"train": {"batch_size": 2, "iters": 4, "log_every": 2, "ckpt_every": 2}, "optim": {"lr": 1e-3}},
        "pseudolabel": {"every": 5, "gap": 3, "max_proposals": 6, "min_sim_colour": 0.0, "min_sim_iou": 0.0},
        "correspond": {"train": {"batch_size": 2, "iters": 4, "log_every": 2, "ckpt_every": 2}, "optim": {"lr": 1e-3}},
        "iterations": 2,
    }


def test_network_shapes_and_input_checks():
    torch.manual_seed(0)
    net = build_pcc_model("pcc_tiny")
    src, tgt = torch.rand(2, 3, *SIZE), torch.rand(2, 3, *SIZE)
    colours = net.colourize(src, tgt)
    assert colours.shape == (2, 3, SIZE[0] // 4, SIZE[1] // 4) and 0 <= colours.min() and colours.max() <= 1
    logits, exist = net.correspond(src, torch.zeros(2, 1, *SIZE), tgt)
    assert logits.shape == (2, 1, SIZE[0] // 4, SIZE[1] // 4) and exist.shape == (2,)
    with pytest.raises(ShapeMismatchError, match="multiple of the stride 16"):
        net.colourize(torch.rand(1, 3, 120, 160), torch.rand(1, 3, 120, 160))
    with pytest.raises(ShapeMismatchError, match=r"\(B, 3, H, W\)"):
        net.encode(torch.rand(1, 1, *SIZE))


def test_the_source_mask_changes_the_prediction():
    """The mask is patchified into the source tokens: two masks, two predictions (after the mask
    embedding has left its zero initialisation)."""
    torch.manual_seed(0)
    net = build_pcc_model("pcc_tiny").eval()
    torch.nn.init.normal_(net.mask_embed.weight, std=0.5)
    src, tgt = torch.rand(1, 3, *SIZE), torch.rand(1, 3, *SIZE)
    a, b = torch.zeros(1, 1, *SIZE), torch.zeros(1, 1, *SIZE)
    a[..., :40, :40], b[..., 80:, 100:] = 1, 1
    with torch.no_grad():
        la, _ = net.correspond(src, a, tgt)
        lb, _ = net.correspond(src, b, tgt)
    assert (la - lb).abs().max() > 1e-5  # exactly 0 if the mask did not reach the decoder


def test_correspondence_loss_is_dice_plus_bce_and_existence():
    t = torch.zeros(2, 1, 8, 8)
    t[0, :, 2:6, 2:6] = 1
    perfect = torch.where(t > 0, 20.0, -20.0)
    loss_fn = CorrespondenceLoss(existence_weight=0.5)
    loss, logs = loss_fn(perfect, torch.tensor([20.0, -20.0]), t, torch.tensor([1.0, 0.0]))
    assert loss < 1e-3 and logs["dice"] < 1e-3
    wrong, logs = loss_fn(-perfect, torch.tensor([-20.0, 20.0]), t, torch.tensor([1.0, 0.0]))
    assert wrong > 5 and logs["exist_bce"] > 5
    assert torch.allclose(dice_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)), torch.zeros(1))


def test_cycle_matches_keep_only_pairs_that_agree_both_ways():
    s12 = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.6], [0.0, 0.1, 0.2]])  # 3 source x 3 target
    s21 = np.array([[0.8, 0.1, 0.1], [0.1, 0.9, 0.0], [0.1, 0.8, 0.1]])  # target j -> source i
    # forward: P_j = argmax_i s12[:, j] = [0, 1, 1]; backward: P_i = argmax_j s21[:, i] = [0, 1, 0]
    assert [(i, j) for i, j, _, _ in cycle_matches(s12, s21)] == [(0, 0), (1, 1)]
    assert [(i, j) for i, j, _, _ in cycle_matches(s12, s21, min_sim=0.75)] == [(0, 0)]
    assert cycle_matches(np.zeros((0, 3)), np.zeros((3, 0))) == []
    with pytest.raises(ValueError, match="one pair"):
        cycle_matches(s12, s21[:2])


def test_cycle_matches_drop_matches_that_do_not_stand_out():
    """Lowe's test as a difference: a match whose row or column holds a near-equal runner-up (a patch
    of repetitive texture) is dropped; a clear one is kept."""
    s = np.array([[0.9, 0.2, 0.1], [0.3, 0.80, 0.78], [0.1, 0.2, 0.95]])
    assert [(i, j) for i, j, _, _ in cycle_matches(s, s.T)] == [(0, 0), (1, 1), (2, 2)]
    kept = [(i, j) for i, j, _, _ in cycle_matches(s, s.T, min_margin=0.1)]
    assert kept == [(0, 0), (2, 2)]  # (1, 1) leads its row's runner-up (1, 2) by 0.02 only
    single = np.array([[0.7]])
    assert [(i, j) for i, j, _, _ in cycle_matches(single, single, min_margin=0.5)] == [(0, 0)]


def test_colour_statistics_match_an_object_across_a_change_of_view_and_light():
    """The weight-free first-stage similarity: the same object seen warped and darker is closer
    than another object; empty masks are similar to nothing."""
    from corr_core.methods.pcc.appearance import ColourStatsSimilarity, colour_descriptors
    from corr_core.methods.pcc.colorize import random_warp, warp
    from corr_core.proposals.base import Proposals

    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(120, 6, (*SIZE, 3)), 0, 255).astype(np.uint8)
    masks = np.zeros((3, *SIZE), bool)
    for k, (colour, (y, x)) in enumerate(zip([(200, 40, 40), (40, 180, 60), (60, 60, 200)],
                                             [(20, 20), (60, 90), (30, 110)], strict=True)):
        img[y : y + 24, x : x + 30] = np.clip(rng.normal(colour, 8, (24, 30, 3)), 0, 255)
        masks[k, y : y + 24, x : x + 30] = True
    matrix = random_warp(SIZE, np.random.default_rng(1))
    other = (warp(img, matrix).astype(np.float32) * 0.8).astype(np.uint8)
    other_masks = np.stack([warp(m, matrix, nearest=True) for m in masks])
    s = ColourStatsSimilarity().similarity(img, Proposals(masks, np.ones(3)), other,
                                           Proposals(other_masks, np.ones(3)))
    assert s.shape == (3, 3) and list(s.argmax(1)) == [0, 1, 2] and list(s.argmax(0)) == [0, 1, 2]
    assert [(i, j) for i, j, _, _ in cycle_matches(s, s.T, min_margin=0.1)] == [(0, 0), (1, 1), (2, 2)]
    d = colour_descriptors(img, np.zeros((1, *SIZE), bool))
    assert not d.any()
    with pytest.raises(ValueError, match="do not match the image"):
        colour_descriptors(img, masks[:, :10])


def test_colour_prior_back_projects_the_source_object_across_a_change_of_light():
    """The back-projected map is high on the object's colours in the target, also when that view is
    darker (chromaticity), and low on colours the source shows around the object."""
    from corr_core.methods.pcc.colour_prior import back_project

    src = torch.full((1, 3, 32, 40), 0.5)
    src[:, :, :, 20:] = torch.tensor([0.2, 0.5, 0.2]).view(1, 3, 1, 1)  # a green half: background
    src[:, :, 8:16, 4:12] = torch.tensor([0.9, 0.2, 0.2]).view(1, 3, 1, 1)  # the red object
    mask = torch.zeros(1, 1, 32, 40)
    mask[:, :, 8:16, 4:12] = 1
    tgt = torch.full((1, 3, 24, 30), 0.5 * 0.7)
    tgt[:, :, 2:10, 15:29] = torch.tensor([0.2, 0.5, 0.2]).view(1, 3, 1, 1) * 0.7
    tgt[:, :, 14:20, 3:9] = torch.tensor([0.9, 0.2, 0.2]).view(1, 3, 1, 1) * 0.7  # the object, moved, darker
    prior = back_project(src, mask, tgt)
    assert prior.shape == (1, 1, 24, 30) and 0 <= prior.min() and prior.max() <= 1
    assert prior[0, 0, 14:20, 3:9].min() > 0.9 and prior[0, 0, 2:10, 15:29].max() < 0.1
    with pytest.raises(ValueError, match="does not fit"):
        back_project(src, mask[:, :, :16], tgt)


def test_colour_prior_network_starts_as_the_network_it_extends(tmp_path):
    """``pcc_tiny_prior`` starts from a ``pcc_tiny`` checkpoint: the added layers begin at zero, so
    its predictions equal the base network's; it refuses other architectures and a call without
    the source images."""
    from corr_core.io.checkpoint import save_checkpoint
    from corr_core.methods.pcc.correspond import CorrespondMethod
    from corr_core.train.init import init_from_checkpoint

    torch.manual_seed(0)
    base = CorrespondMethod("pcc_tiny")
    save_checkpoint(tmp_path / "base", {f"backbone.{k}": v for k, v in base.model.state_dict().items()},
                    {"arch": "pcc_tiny", "method": "pcc_colorize"})
    prior = CorrespondMethod("pcc_tiny_prior")
    init_from_checkpoint(prior, tmp_path / "base.safetensors")
    src, tgt = torch.rand(2, 3, *SIZE), torch.rand(2, 3, *SIZE)
    mask = torch.zeros(2, 1, *SIZE)
    mask[:, :, 20:60, 30:90] = 1
    with torch.no_grad():
        a, ea = base.model.eval().correspond(src, mask, tgt)
        b, eb = prior.model.eval().correspond(src, mask, tgt)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ea, eb, atol=1e-5)
    with pytest.raises(ConfigError, match="needs the source images"):
        prior.model.correspond_features(prior.model.encode(src), mask, prior.model.encode(tgt), tgt)
    save_checkpoint(tmp_path / "other", {f"backbone.{k}": v for k, v in build_pcc_model("pcc_resnet18_l2").state_dict().items()},
                    {"arch": "pcc_resnet18_l2", "method": "pcc_colorize"})
    with pytest.raises(CheckpointError, match="cannot initialise"):
        init_from_checkpoint(prior, tmp_path / "other.safetensors")


def test_recolouring_changes_only_the_object():
    rgb = np.full((32, 32, 3), 100, np.uint8)
    rgb[8:16, 8:16] = (200, 40, 40)
    mask = np.zeros((32, 32), bool)
    mask[8:16, 8:16] = True
    out = recolour(rgb, mask)
    assert np.array_equal(out[~mask], rgb[~mask]) and np.abs(out[mask].astype(int) - rgb[mask]).max() > 60


def test_colour_heatmaps_sum_to_one_and_windowed_encoding_matches_the_whole_image(sim_root):
    torch.manual_seed(0)
    net = build_pcc_model("pcc_tiny")
    scenes = sim_scenes(sim_root, resolution="128p")
    store = ViewStore(scenes, SIZE, build_proposer("oracle"), None)
    src, tgt = View(scenes[0].name, "ego", 0), View(scenes[0].name, "exo1", 0)
    props = store.proposals(src)
    whole = ColourHeatmaps(net, margin=None).heatmaps(store.rgb(src), props, store.rgb(tgt))
    assert whole.shape == (len(props), SIZE[0] // 4, SIZE[1] // 4)
    assert torch.allclose(whole.flatten(1).sum(1), torch.ones(len(props)), atol=1e-4)
    wide = ColourHeatmaps(net, margin=400).heatmaps(store.rgb(src), props, store.rgb(tgt))
    assert torch.allclose(whole, wide, atol=1e-5)  # a window covering the image is the image
    sim = ColourHeatmaps(net).similarity(store.rgb(src), props, store.rgb(tgt), store.proposals(tgt))
    assert sim.shape == (len(props), len(store.proposals(tgt))) and np.all(sim >= 0) and np.all(sim <= 1 + 1e-5)


def test_pseudolabel_precision_is_measured_against_ground_truth(sim_root, tmp_path):
    """A similarity that knows the answer gives precision 1; one that pairs each object with the
    next id gives precision 0; the records and proposal files are written."""
    scenes = sim_scenes(sim_root, resolution="128p")
    store = ViewStore(scenes, SIZE, build_proposer("oracle"), tmp_path / "proposals")
    pairs = pairs_for_labelling(scenes, every=5, gap=3)
    assert {p.cross_view for p in pairs} == {True, False}

    def by_truth(shift: int):
        # label_pairs' calls, in order: forward then backward for every pair; a shift of +1 forward
        # and -1 backward pairs object k with object k + 1 consistently both ways (and wrongly)
        order = [(views, sign) for p in pairs for views, sign in (((p.src, p.tgt), 1), ((p.tgt, p.src), -1))]

        def similarity(src, sp, tgt, tp):
            views, sign = order.pop(0)
            a, b = (store.labels(v) for v in views)
            ia, ib = dominant_ids(sp, a), dominant_ids(tp, b)
            return (ia[:, None] + sign * shift * np.sign(ia[:, None]) == ib[None, :]).astype(np.float32)

        return similarity

    right = label_pairs(pairs, store, by_truth(0), tmp_path / "right", min_sim=0.5)
    assert right["matches"] > 0 and right["precision"] == 1.0 and right["cross_view_precision"] == 1.0
    wrong = label_pairs(pairs, store, by_truth(1), tmp_path / "wrong", min_sim=0.5)
    assert wrong["matches"] > 0 and wrong["precision"] == 0.0
    records = read_pseudolabels(tmp_path / "right")
    assert len(records) == len(pairs) and all(all(r["correct"]) for r in records if r["matches"])
    assert (tmp_path / "proposals" / scenes[0].name / "ego" / "00000.npz").is_file()
    (tmp_path / "bad.jsonl").write_text('{"src": {"scene": "a"}}\n')
    with pytest.raises(DataError, match="bad.jsonl:1"):
        read_pseudolabels(tmp_path / "bad.jsonl")


def test_accumulated_pseudolabels_let_a_later_round_correct_an_earlier_pairing():
    from corr_core.methods.pcc.pseudolabel import merge_pseudolabels

    a, b, c = View("s", "ego", 0), View("s", "exo1", 0), View("s", "ego", 10)
    round0 = [{"src": a, "tgt": b, "matches": [(0, 0), (1, 1), (2, 5)]}, {"src": a, "tgt": c, "matches": [(3, 3)]}]
    round1 = [{"src": a, "tgt": b, "matches": [(2, 2), (4, 1)]}, {"src": b, "tgt": c, "matches": []}]
    merged = {(r["src"], r["tgt"]): sorted(r["matches"]) for r in merge_pseudolabels([round0, round1])}
    # (2, 5) and (1, 1) share a proposal with the later (2, 2) and (4, 1): replaced; (0, 0) kept
    assert merged == {(a, b): [(0, 0), (2, 2), (4, 1)], (a, c): [(3, 3)], (b, c): []}
    assert round0[0]["matches"] == [(0, 0), (1, 1), (2, 5)]  # the inputs are not changed


def test_pair_sampler_draws_cross_view_and_time_gap_pairs(sim_root):
    scenes = sim_scenes(sim_root, resolution="128p")
    sampler = PairSampler(scenes, cross_view=0.5, gap=(2, 3), seed=0)
    pairs = [sampler.sample() for _ in range(200)]
    cross = [p for p in pairs if p.cross_view]
    same = [p for p in pairs if not p.cross_view]
    assert 60 < len(cross) < 140 and all(p.src.t == p.tgt.t for p in cross)
    assert all(2 <= abs(p.src.t - p.tgt.t) <= 3 for p in same)
    with pytest.raises(DataError, match="no frames|not found"):
        sim_scenes(sim_root / "missing")


def test_stages_train_and_iterate_on_tiny_models(sim_root, tiny_cfg, tmp_path):
    """Pretraining lowers the colour loss; each stage writes its model; the loop resumes."""
    from corr_core.crossview.matcher import LEGACY_SETTINGS, CrossViewMatcher
    from corr_core.evaluation.crossview import pcc_scorer
    from corr_core.io.checkpoint import update_checkpoint_metadata
    from corr_core.methods.pcc.pipeline import iterate

    scenes = sim_scenes(sim_root, resolution="128p")
    cfg = json.loads(json.dumps(tiny_cfg))
    cfg["pretrain"]["train"]["iters"] = 12
    cfg["data"]["sim"] = {"size": [160, 128]}
    cfg["score"] = {"episodes": 1, "seed": 2000, "frames": 2, "hidden_per_camera": 1, "every": 1}
    report = iterate(cfg, tmp_path, scenes, score=pcc_scorer(cfg, tmp_path / "cache"))
    scores = report["iterations"][1]["scores"]
    assert set(scores) == {"ego->exo1", "exo1->ego", "existence_threshold", "existence_threshold_geometry",
                           "existence_threshold_depth"}
    assert 0 <= scores["ego->exo1"]["iou"] <= 1
    # the thresholds stored with the model, for matches given the cameras' poses, and their depth
    stored = json.loads(Path(report["iterations"][1]["model"]).with_suffix(".json").read_text())
    for key in ("existence_threshold_geometry", "existence_threshold_depth"):
        assert stored[key] == pytest.approx(scores[key])
    log = [float(r.split(",")[3]) for r in (tmp_path / "pretrain" / "log.csv").read_text().splitlines()[1:]]
    assert log[-1] < log[0]
    assert len(report["iterations"]) == 2
    for k in (1, 2):
        model, meta = load_pcc_model(tmp_path / f"iter_{k}" / "model")
        assert meta["method"] == "pcc_correspond" and (tmp_path / f"pseudo_{k - 1}" / "summary.json").is_file()
        # the scorer calibrated the existence threshold and stored it where the node's matcher finds it
        thresh = report["iterations"][k - 1]["scores"]["existence_threshold"]
        assert meta["existence_threshold"] == thresh and "seeds 2000" in meta["existence_calibrated_on"]
        assert CrossViewMatcher.from_checkpoint(tmp_path / f"iter_{k}" / "model").existence_threshold == thresh
        assert CrossViewMatcher.from_checkpoint(tmp_path / f"iter_{k}" / "model",
                                                existence_threshold=0.9).existence_threshold == 0.9
    # with the threshold, the matcher settings it was calibrated for; a later scoring replaces both
    assert meta["matcher"] == {"verify": "colour", "one_to_one": True}  # the matcher's defaults
    plain = tmp_path / "iter_2" / "model.safetensors"
    pcc_scorer(cfg, tmp_path / "cache", verify="none", one_to_one=False)(plain, "plain")
    matcher = CrossViewMatcher.from_checkpoint(plain)
    assert (matcher.verify, matcher.one_to_one) == ("none", False)
    assert load_pcc_model(plain)[1]["matcher"] == {"verify": "none", "one_to_one": False}
    # a threshold stored before the settings were (older checkpoints) holds for the network alone
    update_checkpoint_metadata(plain, matcher=None)
    matcher = CrossViewMatcher.from_checkpoint(plain)
    assert (matcher.verify, matcher.one_to_one) == (LEGACY_SETTINGS["verify"], LEGACY_SETTINGS["one_to_one"])
    # a caller that calibrates itself (`corr eval crossview --calibrate`) takes the defaults, not what is stored
    mine = CrossViewMatcher.from_checkpoint(plain, stored=False)
    assert (mine.verify, mine.one_to_one, mine.existence_threshold) == ("colour", True, 0.5)
    colouriser = tmp_path / "pretrain" / "model"
    with pytest.raises(CheckpointError, match="no trained correspondence heads"):
        CrossViewMatcher.from_checkpoint(colouriser)
    again = iterate(cfg, tmp_path, scenes)  # everything done: nothing is trained again
    assert [e["model"] for e in again["iterations"]] == [e["model"] for e in report["iterations"]]
    heat = ModelHeatmaps(model)
    store = ViewStore(scenes, SIZE, build_proposer("oracle"), None)
    v1, v2 = View(scenes[0].name, "ego", 0), View(scenes[0].name, "exo1", 0)
    s = heat.similarity(store.rgb(v1), store.proposals(v1), store.rgb(v2), store.proposals(v2))
    assert s.shape == (len(store.proposals(v1)), len(store.proposals(v2))) and np.all((0 <= s) & (s <= 1))


def test_the_first_pseudolabels_can_come_from_colour_statistics(sim_root, tiny_cfg, tmp_path):
    """``pseudolabel.first: colour_stats``: iteration 0 needs no colouriser heatmaps; the summary says
    where the labels came from; an unknown first stage is named."""
    from corr_core.methods.pcc.pipeline import iterate, pseudolabel, view_store

    scenes = sim_scenes(sim_root, resolution="128p")
    cfg = json.loads(json.dumps(tiny_cfg))
    cfg["pseudolabel"].update(first="colour_stats", min_margin=0.02)
    cfg["iterations"] = 1
    store = view_store(cfg, scenes, tmp_path, proposer=build_proposer("oracle"))
    summary = pseudolabel(cfg, None, tmp_path / "pseudo_0", store, scenes)
    assert summary["model"] == "colour_stats" and summary["pairs"] > 0 and summary["matches"] > 0
    assert summary["precision"] > 0.5  # ground-truth masks of distinct objects: colour tells most apart
    report = iterate(cfg, tmp_path, scenes)
    assert report["first_pseudolabels"] == "colour_stats" and (tmp_path / "iter_1" / "model.safetensors").is_file()
    cfg["pseudolabel"]["first"] = "colour_stat"
    with pytest.raises(ConfigError, match="pseudolabel.first"):
        iterate(cfg, tmp_path / "again", scenes)


def test_foreign_checkpoints_are_refused(tmp_path):
    from corr_core.api import packaged_checkpoint

    with pytest.raises(CheckpointError, match="not a PCC checkpoint"):
        load_pcc_model(packaged_checkpoint())
    with pytest.raises(CheckpointError, match="not found"):
        load_pcc_model(tmp_path / "nothing")


def test_contrast_weighted_colour_loss_favours_pixels_that_stand_out():
    from corr_core.methods.pcc.loss_colour import ColourMSELoss

    target = torch.full((1, 3, 32, 32), 0.5)
    target[..., 10:14, 10:14] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # a small red object
    pred = torch.rand(1, 3, 32, 32)
    assert torch.allclose(ColourMSELoss(0.0)(pred, target), F.mse_loss(pred, target))
    miss_object, miss_floor = target.clone(), target.clone()
    miss_object[..., 10:14, 10:14] = 0.5  # the object coloured as the floor
    miss_floor[..., 20:24, 20:24] = torch.tensor([0.1, 0.1, 0.9])[:, None, None]  # an error as large on the floor
    plain, weighted = ColourMSELoss(0.0), ColourMSELoss(4.0)
    assert plain(miss_object, target) == pytest.approx(float(plain(miss_floor, target)), rel=0.2)
    assert weighted(miss_object, target) > 1.5 * weighted(miss_floor, target)
    with pytest.raises(ValueError, match="contrast_weight"):
        ColourMSELoss(-1.0)


def test_batch_streams_continue_exactly_from_a_saved_state(sim_root):
    from corr_core.methods.pcc.colorize import ColourBatches

    scenes = sim_scenes(sim_root, resolution="128p")
    batches = ColourBatches(PairSampler(scenes, seed=3), 2, SIZE, seed=4)
    next(batches)
    state = json.loads(json.dumps(batches.state_dict()))  # it is saved as JSON with last.*
    a = next(batches)
    fresh = ColourBatches(PairSampler(scenes, seed=99), 2, SIZE, seed=99)
    fresh.load_state_dict(state)
    b = next(fresh)
    assert torch.equal(a["src"], b["src"]) and torch.equal(a["tgt"], b["tgt"])


def test_synthetic_pairs_carry_the_source_colours_to_where_the_warp_moves_them():
    from corr_core.methods.pcc.colorize import hue_field, warped_pair

    img = np.full((96, 128, 3), 120, np.uint8)
    img[30:60, 40:80] = (200, 60, 60)
    a, b = hue_field(img, np.random.default_rng(1)), hue_field(img, np.random.default_rng(2))
    assert not np.array_equal(a, b)  # other draws, other colours
    src, tgt = warped_pair(img, np.random.default_rng(0), strength=0.0)  # no warp: target = recoloured source
    assert np.array_equal(src, tgt) and not np.array_equal(src, img)
    src, tgt = warped_pair(img, np.random.default_rng(0))
    assert src.shape == tgt.shape == img.shape and not np.array_equal(src, tgt)
    assert np.abs(src.astype(int) - hue_field(img, np.random.default_rng(0))).max() == 0  # same field, same seed


def test_synthetic_correspondence_items_warp_a_view_and_its_mask(sim_root):
    from corr_core.methods.pcc.correspond import CorrespondenceBatches

    scenes = sim_scenes(sim_root, resolution="128p")
    store = ViewStore(scenes, SIZE, build_proposer("oracle"), None)
    src, tgt = View(scenes[0].name, "ego", 0), View(scenes[0].name, "exo1", 0)
    records = [{"src": src, "tgt": tgt, "matches": [(0, 0)]}]
    batches = CorrespondenceBatches(records, store, 8, erase_prob=0.0, elsewhere_prob=0.0, jitter=False,
                                    synthetic=0.99, seed=1)
    batch = next(batches)
    assert torch.all(batch["exists"] == 1)
    views = {v: torch.from_numpy(store.rgb(v)).permute(2, 0, 1).float() / 255 for v in (src, tgt)}
    synthetic = [k for k in range(8) if not torch.equal(batch["tgt"][k], views[tgt]) and not torch.equal(
        batch["tgt"][k], views[src])]
    assert synthetic  # targets that are neither labelled view: warps of the source
    for k in synthetic:
        assert any(torch.equal(batch["src"][k], views[v]) for v in views)
        assert batch["tgt_mask"][k].sum() >= 0.5 * batch["src_mask"][k].sum() > 0


def test_paste_copy_moves_an_object_onto_another_place_and_cuts_what_leaves_the_image():
    from corr_core.methods.pcc.correspond import paste_copy

    rgb = np.zeros((40, 60, 3), np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[5:9, 5:9] = True
    rgb[mask] = (200, 10, 10)
    place = np.zeros_like(mask)
    place[20:30, 40:50] = True  # centre (24.5, 44.5): the 4x4 square (centre (6.5, 6.5)) moves by (18, 38)
    out = paste_copy(rgb, rgb, mask, place)
    assert (out[23:27, 43:47] == (200, 10, 10)).all() and (out[mask] == (200, 10, 10)).all()
    assert (out.reshape(-1, 3).any(1)).sum() == 2 * mask.sum()  # the copy and nothing else
    edge = np.zeros_like(mask)
    edge[38:40, 58:60] = True  # centre (38.5, 58.5): the copy would cover rows 37-40, columns 57-60
    out = paste_copy(np.zeros_like(rgb), rgb, mask, edge)
    assert (out[37:40, 57:60] == (200, 10, 10)).all() and (out.reshape(-1, 3).any(1)).sum() == 9


def _cross_view_batches(sim_root, **kwargs):
    from corr_core.methods.pcc.correspond import CorrespondenceBatches

    scenes = sim_scenes(sim_root, resolution="128p")
    store = ViewStore(scenes, SIZE, build_proposer("oracle"), None)
    src, tgt = View(scenes[0].name, "ego", 0), View(scenes[0].name, "exo1", 0)
    assert min(len(store.proposals(v)) for v in (src, tgt)) >= 2  # an object and another place to paste it on
    records = [{"src": src, "tgt": tgt, "matches": [(0, 0)]}]
    batches = CorrespondenceBatches(records, store, 16, cross_view=1.0, erase_prob=0.0, elsewhere_prob=0.0,
                                    jitter=False, seed=5, **kwargs)
    return next(batches), store, src, tgt


def _target_of(batch, k, store, views):
    """The stored target view of item ``k`` (a pseudo-label is used both ways): its image and the
    mask of the matched object (proposal 0)."""
    images = {v: torch.from_numpy(store.rgb(v)).permute(2, 0, 1).float() / 255 for v in views}
    src = next(v for v in views if torch.equal(batch["src"][k], images[v]))
    tgt = next(v for v in views if v != src)
    return images[tgt], torch.from_numpy(store.proposals(tgt).masks[0])


def test_decoy_items_paste_a_look_alike_and_either_keep_or_move_the_object(sim_root):
    batch, store, src, tgt = _cross_view_batches(sim_root, decoy_prob=1.0)
    kept = batch["exists"] == 1
    assert kept.any() and (~kept).any()  # both kinds, about half each
    for k in range(16):
        rgb, obj = _target_of(batch, k, store, (src, tgt))
        t = batch["tgt"][k]
        assert not torch.equal(t, rgb)  # a copy was pasted
        if kept[k]:  # the object where it was, its mask the label
            assert torch.equal(batch["tgt_mask"][k, 0].bool(), obj) and torch.equal(t[:, obj], rgb[:, obj])
        else:  # moved: painted out where it was, no mask
            assert batch["tgt_mask"][k].sum() == 0 and not torch.equal(t[:, obj], rgb[:, obj])


def test_smudges_paint_out_another_object_and_leave_the_matched_one_and_its_label(sim_root):
    batch, store, src, tgt = _cross_view_batches(sim_root, smudge_prob=1.0)
    assert torch.all(batch["exists"] == 1)
    for k in range(16):
        rgb, obj = _target_of(batch, k, store, (src, tgt))
        assert torch.equal(batch["tgt_mask"][k, 0].bool(), obj)
        assert torch.equal(batch["tgt"][k][:, obj], rgb[:, obj]) and not torch.equal(batch["tgt"][k], rgb)


def test_out_of_view_windows_leave_the_object_out_or_hold_all_of_it():
    from corr_core.methods.pcc.correspond import out_of_view

    rng = np.random.default_rng(0)
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[..., 0] = np.arange(160, dtype=np.uint8)[None]  # a horizontal ramp: where a window came from shows
    mask = np.zeros((120, 160), bool)
    mask[50:70, 70:90] = True  # a central object: only windows narrower than its sides can leave it out
    rgb[mask] = (0, 255, 0)
    for keep in (False, True):
        got = [out_of_view(rgb, mask, rng, keep) for _ in range(50)]
        got = [g for g in got if g is not None]
        assert len(got) >= 10
        for window, cut in got:
            assert window.shape == rgb.shape and cut.shape == mask.shape and cut.dtype == mask.dtype
            green = window[..., 1] > 128  # the object (edges blend when enlarged)
            if keep:  # all of it, enlarged, its mask cut and enlarged alike
                assert cut.sum() > mask.sum() and green[cut].mean() > 0.85
            else:  # none of it, and no trace of it either
                assert not cut.any() and not green.any()
            assert len(np.unique(window[..., 0])) > 20  # a zoomed window of the ramp, not a flat fill
    whole = np.ones_like(mask)
    assert out_of_view(rgb, whole, rng, keep=False) is None  # nothing to leave it out of
    assert out_of_view(rgb, np.zeros_like(mask), rng, keep=True) is None


def test_out_of_view_items_are_negatives_without_the_object_or_positives_with_its_cut_mask(sim_root):
    batch, store, src, tgt = _cross_view_batches(sim_root, crop_prob=1.0)
    absent = batch["exists"] == 0
    assert absent.any() and (~absent).any()
    windows = 0
    for k in range(16):
        rgb, obj = _target_of(batch, k, store, (src, tgt))
        cropped = not torch.equal(batch["tgt"][k], rgb)  # a window, enlarged (or the view as it was, where
        windows += cropped                               # no window of the drawn size leaves the object out)
        if absent[k]:
            assert cropped and batch["tgt_mask"][k].sum() == 0
        elif cropped:
            assert batch["tgt_mask"][k].sum() >= obj.sum()
        else:
            assert torch.equal(batch["tgt_mask"][k, 0].bool(), obj)
    assert windows > absent.sum()  # positive windows too: the zoom alone does not say "absent"


@pytest.mark.parametrize("kwargs", [{"decoy_prob": 1.5}, {"smudge_prob": -0.1}, {"crop_prob": 2.0}])
def test_target_edit_probabilities_are_checked(sim_root, kwargs):
    with pytest.raises(ConfigError, match="must be a probability"):
        _cross_view_batches(sim_root, **kwargs)
