"""`corr demo` end to end on a tiny episode: MuJoCo -> bag -> player -> corr_node -> recorder -> J&F.

The demo lives on the ROS side (corr_ros/demo.py, a plugin of the `corr` command through the
`corr.commands` entry point group); it is run here through its module, as `corr demo` runs it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: J&F-Mean per camera of the shipped checkpoint (corr_core/assets/checkpoints/fc_resnet18_s8) on
#: this test's episode (seed 7, 6 frames of 128x96, 4 objects, input_scale 2), measured with
#: `python -m corr_ros.demo --frames 6 --size 128x96 --objects 4` before and after the corr_node
#: split of issue 7: ego 0.301, exo1 0.547 with PyTorch and with onnxruntime (identical to 3
#: decimals; the run is deterministic). The floors sit a little below. On so short an episode
#: repeating the first mask would score higher (0.73 / 0.78): the floors catch a broken pipeline
#: (missing, shifted or mislabelled frames), not a weaker network.
JF_FLOOR = {"ego": 0.27, "exo1": 0.50}


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_demo_serves_the_shipped_checkpoint_through_the_live_node(tmp_path, ros_env, backend):
    from corr_core.api import packaged_checkpoint

    ckpt = packaged_checkpoint()
    assert ckpt is not None, "the package ships its FC checkpoint"
    if backend == "onnxruntime":  # the node serves an exported ONNX file
        from corr_core.api import export_checkpoint_onnx

        ckpt = export_checkpoint_onnx(ckpt, tmp_path / "ckpt" / "shipped.onnx", size=(96, 128))["path"]
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "corr_ros.demo", "--out", str(out), "--checkpoint", str(ckpt),
         "--frames", "6", "--size", "128x96", "--objects", "4", "--timeout", "240"],
        env=ros_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["cameras"]) == {"ego", "exo1"}
    for cam, m in metrics["cameras"].items():
        assert m["frames"] == 6 and m["frames_without_labels"] == [], cam
        assert m["J&F-Mean"] >= JF_FLOOR[cam], (cam, m["J&F-Mean"])
        assert len(m["objects"]) == 4, cam
        assert len(list((out / "overlays" / cam).glob("*.jpg"))) == 6
    assert "J&F-Mean" in proc.stdout and "ego" in proc.stdout
    assert metrics["synchronised_sets_per_s"] > 0 and metrics["input_scale"] == 2.0
    assert metrics["checkpoint"] == str(ckpt)
    network = "OnnxFeatureModel" if backend == "onnxruntime" else "ResNetDense"
    assert f"feature network {network} from {ckpt}" in (out / "logs" / "corr_node.log").read_text()


def test_demo_is_a_corr_command_plugin_with_the_same_options(tmp_path):
    from corr_ros import demo

    parser = argparse.ArgumentParser(prog="corr")
    demo.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", "--out", "x", "--frames", "6", "--input-scale", "1"])
    assert args.func is demo.run
    assert (args.out, args.frames, args.input_scale, args.seed, args.size, args.objects, args.timeout) == (
        "x", 6, 1.0, demo.DEMO_SEED, "320x240", 5, 900.0)
    assert args.checkpoint is None and args.train_iters == 200
    assert not args.geometry and args.crossview is None
    # --geometry plays the cross-view run with the rig: alone it is refused before anything is rendered
    from corr_core.errors import CorrError

    out = tmp_path / "demo"
    with pytest.raises(CorrError, match="--geometry needs --crossview"):
        demo.run(parser.parse_args(["demo", "--out", str(out), "--geometry"]))
    assert not out.exists()
    # setup.py registers it in the group the `corr` command loads plugins from
    setup = (ROOT / "setup.py").read_text()
    assert re.search(r'"corr\.commands":\s*\[\s*"demo = corr_ros\.demo:add_parser"', setup)


def test_demo_module_imports_no_ros_or_torch_and_answers_help():
    code = ("import sys, corr_ros.demo; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'torch', 'rosbags', 'mujoco')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "corr_ros.demo", "--help"], capture_output=True, text=True,
                               check=True, cwd=ROOT).stdout
    assert "--input-scale" in help_text and "usage: corr demo" in help_text


def test_corr_core_starts_no_ros_process_by_name():
    """Process launching is on the ROS side: no corr_core module names a corr_ros module to run."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "corr_core").rglob("*.py")
                 if re.search(r"[\"']corr_ros\.(nodes|demo|launcher)", p.read_text())]
    assert not offenders, offenders
