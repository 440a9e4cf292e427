"""``corr bench propagate|backends`` at tiny sizes: file structure, and ratios from the measured times."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from corr_core.commands import bench
from corr_core.commands.bench import parse_resolution
from corr_core.errors import ConfigError


def main(argv: list[str]) -> int:
    """``corr <argv>`` with only the bench command registered (as corr_core.cli does it)."""
    parser = argparse.ArgumentParser(prog="corr")
    bench.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def test_bench_propagate_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "bench" / "prop.json"
    code = main(
        [
            "bench",
            "propagate",
            "--resolutions",
            "24x40",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--context",
            "2",
            "--radius",
            "2",
            "--channels",
            "8",
            "--kinds",
            "propagation,features",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["settings"]["context"] == 2 and report["settings"]["topk"] == 10
    assert report["host"]["torch"]
    rows = report["results"]
    assert [(r["device"], r["resolution"], r["kind"]) for r in rows] == [
        ("cpu", "24x40", "propagation"),
        ("cpu", "24x40", "features"),
    ]
    for r in rows:
        assert r["frame"] == [24, 40] and r["grid"] == [3, 5]
        for method in ("local", "dense"):
            m = r[method]
            assert len(m["seconds"]) == 1 and m["seconds_median"] == m["seconds"][0] > 0
            assert math.isclose(m["fps"], 1.0 / m["seconds_median"])
            assert m["peak_mib"] >= 0 and m["baseline_mib"] > 0 and m["threads"] >= 1
        assert math.isclose(r["speedup"], r["dense"]["seconds_median"] / r["local"]["seconds_median"])
    assert rows[0]["max_abs_diff"] <= 1e-5  # same soft labels from both implementations
    assert rows[1]["local"]["backbone_seconds_median"] > 0
    table = out.with_suffix(".md").read_text()
    assert "| cpu | 24x40 | 3x5 | propagation |" in table and f"{rows[0]['speedup']:.2f}x" in table
    assert str(out) in capsys.readouterr().out


def test_bench_options_are_checked():
    assert parse_resolution("480p") == ("480p", (480, 854))
    assert parse_resolution("64x96") == ("64x96", (64, 96))
    with pytest.raises(ConfigError, match="resolutions"):
        parse_resolution("big")
    with pytest.raises(ConfigError, match="--kinds"):
        main(["bench", "propagate", "--kinds", "nope"])
    with pytest.raises(ConfigError, match="--device"):
        main(["bench", "propagate", "--device", "tpu"])
    with pytest.raises(ConfigError, match="--repeats"):
        main(["bench", "propagate", "--repeats", "0"])
    with pytest.raises(ConfigError, match="--repeats"):
        main(["bench", "backends", "--repeats", "0"])
    with pytest.raises(ConfigError, match=r"\.json"):
        main(["bench", "backends", "--out", "x.md"])


def test_bench_backends_times_torch_and_onnxruntime(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "backends", "--random-init", "0", "--resolutions", "64x96,40x72", "--repeats", "2",
                 "--warmup", "1", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["settings"]["threads"] == 1 and max(report["settings"]["parity"].values()) < 1e-3
    assert [r["resolution"] for r in report["results"]] == ["64x96", "40x72"]
    for r in report["results"]:
        for backend in ("torch", "onnxruntime"):
            m = r[backend]
            assert len(m["seconds"]) == 2 and m["seconds_median"] > 0
            assert math.isclose(m["fps"], 1 / m["seconds_median"])
        assert math.isclose(r["speedup_vs_torch"], r["torch"]["seconds_median"] / r["onnxruntime"]["seconds_median"])
        assert r["max_abs_diff"] < 1e-3
    table = out.with_suffix(".md").read_text()
    assert table in capsys.readouterr().out and "| 40x72 (40x72) |" in table
