"""`corr demo` end to end on a tiny episode: MuJoCo -> bag -> player -> corr_node -> recorder -> J&F."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from corr_core.io.checkpoint import save_checkpoint
from corr_core.models import build_backbone


@pytest.mark.ros
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_demo_runs_through_the_live_node_and_scores_every_camera(tmp_path, ros_env, backend):
    torch.manual_seed(0)
    net = build_backbone("resnet18_s8")
    ckpt = save_checkpoint(tmp_path / "ckpt" / "rand", {f"backbone.{k}": v for k, v in net.state_dict().items()},
                           {"arch": "resnet18_s8", "method": "random-init", "kind": "backbone"})
    if backend == "onnxruntime":  # the node serves an exported ONNX file
        from corr_core.export import export_onnx

        ckpt = export_onnx(ckpt, tmp_path / "ckpt" / "rand.onnx", size=(96, 128))["path"]
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "corr_core.cli", "demo", "--out", str(out), "--checkpoint", str(ckpt),
         "--frames", "6", "--size", "128x96", "--objects", "4", "--timeout", "240"],
        env=ros_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["cameras"]) == {"ego", "exo1"}
    for cam, m in metrics["cameras"].items():
        assert m["frames"] == 6 and m["frames_without_labels"] == [], cam
        assert 0.0 <= m["J&F-Mean"] <= 1.0
        assert len(list((out / "overlays" / cam).glob("*.jpg"))) == 6
    assert "J&F-Mean" in proc.stdout and "ego" in proc.stdout
    assert metrics["synchronised_sets_per_s"] > 0 and metrics["input_scale"] == 2.0
    assert metrics["checkpoint"] == str(ckpt)
    network = "OnnxFeatureModel" if backend == "onnxruntime" else "ResNetDense"
    assert f"feature network {network} from {ckpt}" in (out / "logs" / "corr_node.log").read_text()
