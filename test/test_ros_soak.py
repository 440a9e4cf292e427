"""The soak (shortened for CI) and ``corr bench node`` (run briefly), over real ROS 2 topics.

The soak plays two cameras at a fixed rate into a corr_node process for ``CORR_SOAK_S`` seconds
(25 by default; the full soak is ``corr bench node --soak --duration 600 --rate 30``) with reliable
camera subscriptions, and checks: every published set reached the node; dropped sets = published -
processed (the node's counters); the labels of every processed set came back; memory is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_soak_at_a_fixed_rate_keeps_memory_bounded_and_accounts_for_every_set(ros_env, tmp_path):
    from corr_ros.bench_node import soak_verdict
    from corr_ros.loadtest import LoadSpec, run_load

    duration = float(os.environ.get("CORR_SOAK_S", "25"))
    rate = float(os.environ.get("CORR_SOAK_HZ", "10"))
    spec = LoadSpec(cameras=2, size=(48, 64), rate_hz=rate, duration_s=duration, warmup_s=5.0, reliable_input=True,
                    params={"context": 4}, startup_s=300.0, drain_s=300.0)
    res = run_load(spec, ros_env, tmp_path).to_dict()
    verdict = soak_verdict(res, max_growth_mib=60.0)
    assert verdict["passed"], (verdict, res["node"], res["rss_mib"], res["labels_received"], res["total_published"])
    assert res["processed"] + res["dropped"] == res["published"] > 0
    assert res["node"]["backend"] == "torch" and res["node"]["precision"] == "fp32"  # what runs, in /diagnostics
    assert len(res["memory"]) >= duration / spec.sample_period_s * 0.8
    log = next(tmp_path.glob("corr_node_*.log")).read_text()
    assert "backend torch fp32 on cpu" in log


def _bench_parser():
    from corr_core import cli
    from corr_ros import bench_node

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "node" not in next(a for a in sub.choices["bench"]._actions if isinstance(a, argparse._SubParsersAction)).choices:
        bench_node.add_parser(sub)  # the plugin (entry point bench_node), as `corr` loads it once installed
    return parser


def test_bench_node_is_a_corr_bench_plugin_that_imports_no_ros():
    setup = (REPO_ROOT / "setup.py").read_text()
    assert re.search(r'"bench_node = corr_ros\.bench_node:add_parser"', setup)
    from corr_ros import bench_node

    args = _bench_parser().parse_args(["bench", "node", "--random-init", "0", "--soak", "--cameras", "2",
                                       "--resolutions", "240p", "--backends", "onnxruntime", "--duration", "600"])
    assert args.func is bench_node.run and args.soak and args.duration == 600.0 and args.rate == 30.0
    code = ("import sys, corr_ros.bench_node; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"
    assert set(bench_node.available_backends()) >= {"torch", "onnxruntime"}
    svg = bench_node.memory_svg([(0.0, 500.0), (1.0, 510.0), (2.0, 505.0)], "t")
    assert svg.startswith("<svg") and "polyline" in svg


def test_bench_node_runs_briefly_and_writes_its_report(ros_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CORR_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "node.json"
    args = _bench_parser().parse_args([
        "bench", "node", "--random-init", "0", "--cameras", "2", "--resolutions", "48x64", "--backends", "onnxruntime",
        "--baseline", "--rate", "5", "--duration", "3", "--warmup", "2", "--out", str(out), "--param", "context:=3",
        "--param", "match_precision:=bf16",
        "--domain-id", ros_env["ROS_DOMAIN_ID"]])
    assert args.func(args) == 0
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    assert names == ["2 cams 48x64 torch (baseline)", "2 cams 48x64 onnxruntime"]
    for row in report["results"]:
        assert row["published"] == 15 and row["processed"] + row["dropped"] == row["published"]
        assert row["processed"] > 0  # labels of one stamp on both cameras (a shifted pairing gives none)
        assert set(row["latency_ms"]) == {"p50", "p95", "p99", "max", "mean"} and row["rss_mib"]["max"] > 0
        assert row["node"]["backend"] == row["config"]["backend"]
    assert report["settings"]["params"]["context"] == "3"
    # the baseline is the node before this work: its defaults, one camera at a time; --param is for the others
    base, new = (r["spec"]["params"] for r in report["results"])
    assert base == {"device": "cpu", "batch_cameras": False} and new["context"] == "3"
    assert new["match_precision"] == "bf16"  # the node took it (an undeclared parameter fails its configure)
    assert report["results"][1]["vs_before"] is None or report["results"][1]["vs_before"] > 0
    table = out.with_suffix(".md").read_text()
    assert "| 2 cams 48x64 onnxruntime |" in table and "latency p50 / p95 / p99" in table


def test_bench_node_backends_take_a_precision_each():
    from corr_core.errors import ConfigError
    from corr_ros.bench_node import backend_choices

    assert backend_choices("torch:bf16, onnxruntime", "fp32") == [("torch", "bf16"), ("onnxruntime", "fp32")]
    assert backend_choices("", "bf16") == [(b, "bf16") for b in ("torch", "onnxruntime")]
    with pytest.raises(ConfigError, match="unknown backend 'onnx' in 'onnx:fp32'"):
        backend_choices("onnx:fp32")
    with pytest.raises(ConfigError, match="unknown precision 'bf61'"):
        backend_choices("torch:bf61")


def test_bench_node_params_must_be_name_value_pairs():
    from corr_core.errors import ConfigError
    from corr_ros.bench_node import node_params

    assert node_params(["context:=5", " radius := 8.0"]) == {"context": "5", "radius": "8.0"}
    for bad in ("context=5", ":=5"):
        with pytest.raises(ConfigError, match="NAME:=VALUE"):
            node_params([bad])
