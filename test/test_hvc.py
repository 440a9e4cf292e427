"""HVC (seed 003): positive mask, hybrid loss, pseudo-dynamic generator, and real tiny runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from resume_check import resumed_equals_whole

from corr_core.errors import ConfigError, DataError, TrainingError
from corr_core.io.checkpoint import load_checkpoint
from corr_core.methods import BatchContext, method_spec
from corr_core.methods.hvc import HVCMethod, HybridCorrespondenceLoss, PseudoDynamicGenerator
from corr_core.train.data import ImagePool, PairCropBatches
from corr_core.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def _images(n: int = 6, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (96, 72), interpolation=cv2.INTER_CUBIC)
            for _ in range(n)]


def _batches(seed: int = 1, batch_size: int = 2, crop_size: int = 32) -> PairCropBatches:
    pool = ImagePool()
    pool.add_arrays("synthetic", _images())
    return PairCropBatches(pool, batch_size=batch_size, crop_size=crop_size, scale=(0.3, 1.0), seed=seed)


def _method(**kwargs) -> HVCMethod:
    return HVCMethod(**{"hidden_dim": 32, "out_dim": 16, **kwargs})


def _cfg(iters: int = 4) -> dict:
    return {"method": "hvc", "model": {"arch": "resnet18_s8"},
            "train": {"iters": iters, "log_every": 1, "ckpt_every": 2}, "optim": {"lr": 1e-3}}


def test_positive_mask_pairs_the_same_place_of_the_image_only():
    loss = HybridCorrespondenceLoss(radius=0.5)
    same = torch.tensor([[0.0, 0.0, 64.0, 64.0]])
    assert torch.equal(loss.positive_mask(same, same, 4, 4)[0], torch.eye(16))
    far = torch.tensor([[0.0, 200.0, 64.0, 64.0]])
    assert loss.positive_mask(same, far, 4, 4).sum() == 0
    # view 2 is the right half of view 1 (its cells half as wide): each view-2 cell centre is 4 px
    # from one view-1 centre of its row (< half of the 22.6 px diagonal) and 12 px or more from the others
    half = torch.tensor([[0.0, 32.0, 64.0, 32.0]])
    m = loss.positive_mask(same, half, 4, 4)[0]
    assert m.sum() == 16 and torch.equal(m.sum(0), torch.ones(16))
    assert m[2, 0] == 1 and m[1, 0] == 0  # view-1 (0, 2) at x 40 pairs with view-2 (0, 0) at x 36
    with pytest.raises(ValueError, match="radius"):
        HybridCorrespondenceLoss(radius=0.0)


def test_hybrid_loss_adds_static_and_dynamic_agreement_over_the_positives():
    box = torch.tensor([[0.0, 0.0, 32.0, 32.0], [0.0, 0.0, 32.0, 32.0]])
    f = torch.randn(2, 8, 4, 4)
    s = torch.randn(2, 2, 4, 4)
    hybrid = HybridCorrespondenceLoss(radius=0.5)
    value, logs = hybrid(f, f.clone(), box, box, s, s.clone())
    assert value.item() == pytest.approx(-4.0, abs=1e-5)
    assert logs["static"] == pytest.approx(1.0, abs=1e-5) and logs["dynamic"] == pytest.approx(1.0, abs=1e-5)
    assert logs["positives"] == 16
    value, _ = hybrid(f, f.clone(), box, box, s, -s)  # the signals disagree everywhere
    assert value.item() == pytest.approx(0.0, abs=1e-5)
    static_only = HybridCorrespondenceLoss(radius=0.5, dynamic=False)
    value, logs = static_only(f, f.clone(), box, box)
    assert value.item() == pytest.approx(-2.0, abs=1e-5) and "dynamic" not in logs
    # an image without positives counts 0, the others their own mean
    far = torch.tensor([[0.0, 0.0, 32.0, 32.0], [0.0, 500.0, 32.0, 32.0]])
    value, _ = static_only(f, f.clone(), box, far)
    assert value.item() == pytest.approx(-1.0, abs=1e-5)
    with pytest.raises(ValueError, match="signals"):
        hybrid(f, f, box, box)


def test_pseudo_dynamic_signals_depend_on_the_order_of_the_views():
    torch.manual_seed(0)
    gen = PseudoDynamicGenerator(8, hidden_dim=16).eval()
    a, b = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    fwd, bwd = gen(a, b), gen(b, a)
    assert fwd.shape == (2, 2, 4, 4) and not torch.allclose(fwd, bwd)


def test_static_only_builds_no_generator_and_logs_no_dynamic_term():
    torch.manual_seed(0)
    batch = next(_batches())
    static = _method(dynamic=False)
    assert static.generator is None and not any(k.startswith("generator.") for k in static.state_dict())
    _, logs = static.training_step(batch)
    assert "dynamic" not in logs and "static" in logs
    hybrid = _method()
    _, logs = hybrid.training_step(batch)
    assert "dynamic" in logs
    online = {id(p) for p in hybrid.online_parameters()}
    assert all(id(p) in online for p in hybrid.generator.parameters())
    assert not any(id(p) in online for p in hybrid.target_parameters())


@pytest.mark.slow
def test_a_few_steps_lower_the_loss_and_the_target_follows_the_online_network(tmp_path):
    batch = next(_batches(batch_size=4, crop_size=48))
    for dynamic in (True, False):
        torch.manual_seed(0)
        method = _method(dynamic=dynamic)
        before, _ = method.training_step(batch)
        Trainer(method, iter(lambda: batch, None), tmp_path / f"run{dynamic}", _cfg(iters=12)).fit()
        method.eval()
        after, _ = method.training_step(batch)
        assert after.item() < before.item() - 0.05, (dynamic, before.item(), after.item())
        on = torch.cat([p.flatten() for p in method.backbone.parameters()])
        tg = torch.cat([p.flatten() for p in method.target_backbone.parameters()])
        assert 0 < (on - tg).abs().max() < 1.0
    header = (tmp_path / "runTrue" / "log.csv").read_text().splitlines()[0].split(",")
    assert {"static", "dynamic", "positives", "tau", "feat_erank"} <= set(header)


def test_an_interrupted_and_resumed_run_ends_with_the_weights_of_the_uninterrupted_one(tmp_path):
    resumed_equals_whole(tmp_path, _method, _batches, _cfg(iters=4))

def test_nan_loss_stops_the_run_with_a_message_and_keeps_the_last_good_state(tmp_path):
    class Exploding(HVCMethod):
        explode = False

        def training_step(self, batch):
            loss, logs = super().training_step(batch)
            return (loss * float("nan") if self.explode else loss), logs

    torch.manual_seed(0)
    method = Exploding(hidden_dim=32, out_dim=16)
    trainer = Trainer(method, _batches(), tmp_path / "run", _cfg(iters=6))
    trainer.iters = 2
    trainer.fit()
    method.explode = True
    trainer.iters = 6
    with pytest.raises(TrainingError, match=r"loss became nan at step 2.*last\.safetensors"):
        trainer.fit()
    kept, meta = load_checkpoint(tmp_path / "run" / "last")
    assert meta["step"] == 2 and meta["method"] == "hvc"
    assert all(torch.isfinite(v).all() for v in kept.values() if v.is_floating_point())


def test_empty_or_unreadable_image_sources_are_named(tmp_path):
    spec = method_spec("hvc")

    def batches(data):
        cfg = {"method": "hvc", "seed": 0, "data": data}
        return spec.batches(BatchContext(cfg, data, tmp_path / "cache", batch_size=2, seed=0))

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=re.escape(str(empty)) + ".*no images"):
        batches({"folders": [str(empty)], "crop_size": 32})
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "missing")) + " does not exist"):
        batches({"folders": [str(tmp_path / "missing")], "crop_size": 32})
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "photo.jpg").write_bytes(b"not a jpeg")
    stream = batches({"folders": [str(broken)], "crop_size": 32})
    with pytest.raises(DataError, match=re.escape(str(broken / "photo.jpg"))):
        next(stream)


@pytest.mark.slow
def test_corr_train_on_an_image_folder_gives_a_checkpoint_that_loads_and_exports_by_path(tmp_path):
    from corr_core.api import build_tracker, export_checkpoint_onnx, load_feature_model
    from corr_core.commands.train import train_from_config
    from corr_core.config import load_training_config

    images = tmp_path / "images"
    images.mkdir()
    for i, img in enumerate(_images()):
        cv2.imwrite(str(images / f"snap_{i}.png"), img)
    recipe = ROOT / "training" / "hvc_cpu.yaml"
    cfg = load_training_config(recipe, [
        "data.davis=[]", "data.skimage=false", "data.skvideo=false", "data.sim.episodes=0",
        f"data.folders=[{images}]", "train.iters=2", "train.batch_size=2", "data.crop_size=32",
        "model.hidden_dim=32", "model.out_dim=16", "train.log_every=1"])
    path = train_from_config(cfg, tmp_path / "run", recipe)
    model, meta = load_feature_model(path)
    assert meta["arch"] == "resnet18_s8" and meta["method"] == "hvc" and meta["kind"] == "backbone"
    assert json.loads((tmp_path / "run" / "last.json").read_text())["step"] == 2
    build_tracker(str(path))
    report = export_checkpoint_onnx(path, tmp_path / "hvc.onnx", size=(64, 96))
    assert (tmp_path / "hvc.onnx").is_file() and report["metadata"]["method"] == "hvc"
