"""ONNX export of feature networks and the onnxruntime backend (real onnx + onnxruntime)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from corr_core.api import build_tracker, export_checkpoint_onnx, load_feature_model
from corr_core.cli import main as corr_main
from corr_core.errors import CheckpointError, ExportError
from corr_core.export import ONNX_FORMAT, export_onnx, onnx_metadata
from corr_core.io.checkpoint import save_checkpoint
from corr_core.models import BACKBONES, build_backbone
from corr_core.runtime import OnnxFeatureModel

SIZE = (64, 96)


def _checkpoint(tmp_path, arch="resnet18_s8", seed=0):
    torch.manual_seed(seed)
    net = build_backbone(arch)
    return save_checkpoint(tmp_path / "ckpt" / arch, {f"backbone.{k}": v for k, v in net.state_dict().items()},
                           {"arch": arch, "method": "random-init", "kind": "backbone"})


@pytest.mark.parametrize("arch", sorted(BACKBONES))
def test_export_matches_pytorch_at_other_sizes(tmp_path, arch):
    ckpt = _checkpoint(tmp_path, arch)
    out = tmp_path / f"{arch}.onnx"
    report = export_checkpoint_onnx(ckpt, out, size=SIZE)
    assert out.is_file() and max(report["parity_max_abs_diff"].values()) <= 1e-3
    meta = onnx_metadata(out)
    assert meta["corr_format"] == ONNX_FORMAT and meta["arch"] == arch and meta["source_sha256"]
    assert json.loads(out.with_suffix(".export.json").read_text())["metadata"] == meta

    onnx_model, info = load_feature_model(out)  # a .onnx path is run by onnxruntime
    assert isinstance(onnx_model, OnnxFeatureModel) and info["backend"] == "onnxruntime"
    torch_model, _ = load_feature_model(ckpt)
    x = torch.rand(2, 3, 56, 120)  # another size and a batch of two
    with torch.inference_mode():
        ref, got = torch_model(x), onnx_model(x)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert (got - ref).abs().max().item() < 1e-3


def test_export_takes_a_model_and_its_metadata_not_a_path(tmp_path):
    torch.manual_seed(0)
    net = build_backbone("resnet18_s8")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    out = tmp_path / "net.onnx"
    report = export_onnx(net, out, metadata={"arch": "resnet18_s8", "method": "fc", "source": "memory"}, size=SIZE)
    meta = onnx_metadata(out)
    assert meta["arch"] == "resnet18_s8" and meta["method"] == "fc" and meta["source"] == "memory"
    assert meta["source_sha256"] == "" and meta["feature_stride"] == "8" and report["path"] == str(out)
    # the caller's module is left as it was (mode and weights): the export works on a copy
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    with pytest.raises(ExportError, match="export_checkpoint_onnx"):
        export_onnx(str(tmp_path / "some_checkpoint"), tmp_path / "x.onnx", size=SIZE)
    with pytest.raises(CheckpointError, match="ONNX file already"):
        export_checkpoint_onnx(out, tmp_path / "again.onnx", size=SIZE)


def test_tracker_on_onnx_gives_the_labels_of_the_tracker_on_pytorch(tmp_path):
    ckpt = _checkpoint(tmp_path)
    out = tmp_path / "net.onnx"
    export_checkpoint_onnx(ckpt, out, size=SIZE)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8) for _ in range(2)]
    frames += [np.roll(frames[-1], 3 * i, axis=1) for i in range(1, 4)]
    masks = np.zeros(SIZE, np.uint8)
    masks[8:40, 10:50], masks[30:60, 60:90] = 1, 2
    labels = {}
    for name, source in (("torch", ckpt), ("onnx", out)):
        tracker = build_tracker(str(source), {"topk": 5, "context": 2, "radius": 4.0})
        labels[name] = [tracker.step(frames[0], masks)] + [tracker.step(f) for f in frames[1:]]
    agree = np.mean([np.mean(a == b) for a, b in zip(labels["torch"], labels["onnx"], strict=True)])
    assert agree > 0.999, agree


def test_foreign_and_broken_onnx_files_are_refused_with_the_reason(tmp_path):
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.rand(1, 3, 8, 8),), str(foreign),
                      input_names=["image"], output_names=["features"], dynamo=False)
    with pytest.raises(CheckpointError, match="not an ONNX model exported by corr"):
        OnnxFeatureModel(foreign)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00not protobuf" * 50)
    with pytest.raises(CheckpointError, match="broken.onnx"):
        load_feature_model(broken)
    with pytest.raises(CheckpointError, match="not found"):
        load_feature_model(tmp_path / "missing.onnx")


def test_failed_parity_writes_nothing_and_keeps_an_existing_file(tmp_path):
    ckpt = _checkpoint(tmp_path)
    out = tmp_path / "net.onnx"
    out.write_bytes(b"previous export")
    with pytest.raises(ExportError, match="differ from PyTorch"):
        export_checkpoint_onnx(ckpt, out, size=SIZE, atol=1e-12)
    assert out.read_bytes() == b"previous export" and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ExportError, match=r"\.onnx"):
        export_checkpoint_onnx(ckpt, tmp_path / "net.pt", size=SIZE)


def test_cli_exports_and_names_a_missing_checkpoint(tmp_path, capsys):
    out = tmp_path / "rand.onnx"
    assert corr_main(["export", "onnx", "--random-init", "0", "--out", str(out), "--height", "64",
                      "--width", "96"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metadata"]["source"] == "random-init" and out.is_file()
    assert corr_main(["export", "onnx", str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "nope" in capsys.readouterr().err
