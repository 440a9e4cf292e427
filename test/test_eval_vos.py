"""run_vos / score_predictions / `corr eval vos` on a tiny DAVIS layout built in tmp_path."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from corr_core.cli import main as corr_main
from corr_core.data.davis import DavisDataset
from corr_core.data.labels import read_label_png, write_label_png
from corr_core.errors import DataError, ShapeMismatchError
from corr_core.evaluation import run_vos, score_predictions
from corr_core.metrics.davis import GLOBAL_KEYS, evaluate_davis

H, W, T = 32, 48, 5


def make_layout(root):
    """Two sequences: 'still' (one object that never moves), 'slide' (a square moving 1 px/frame
    to the right, plus a second, static object)."""
    rng = np.random.default_rng(0)
    for seq in ("still", "slide"):
        for t in range(T):
            img = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
            path = root / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
            lab = np.zeros((H, W), np.uint8)
            if seq == "still":
                lab[4:14, 6:20] = 1
            else:
                lab[10:18, 5 + t : 13 + t] = 1
                lab[22:30, 30:40] = 2
            write_label_png(root / "Annotations" / "480p" / seq / f"{t:05d}.png", lab)
    (root / "ImageSets" / "2016").mkdir(parents=True)
    (root / "ImageSets" / "2016" / "tiny.txt").write_text("still\nslide\n")
    return root


class CopyFirst:
    """Returns the first frame's mask for every frame."""

    def __init__(self):
        self.first = None
        self.calls = 0

    def step(self, frame, masks=None):
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        if masks is not None:
            self.first = masks.copy()
        self.calls += 1
        return self.first


@pytest.fixture()
def layout(tmp_path):
    return make_layout(tmp_path / "davis")


def test_run_vos_writes_predictions_reports_and_official_scores(layout, tmp_path):
    trackers = []

    def factory():
        trackers.append(CopyFirst())
        return trackers[-1]

    ds = DavisDataset(layout, split="tiny")
    out = tmp_path / "out"
    metrics = run_vos(factory, ds, out, progress=False)

    assert [t.calls for t in trackers] == [T, T]  # a fresh tracker per sequence, every frame fed
    for seq in ("still", "slide"):
        preds = sorted((out / "predictions" / seq).glob("*.png"))
        assert [p.name for p in preds] == [f"{t:05d}.png" for t in range(T)]
        assert Image.open(preds[-1]).mode == "P"
        np.testing.assert_array_equal(
            read_label_png(preds[-1]), read_label_png(layout / "Annotations" / "480p" / seq / "00000.png")
        )
        assert len(list((out / "overlays" / seq).glob("*.jpg"))) == T

    # hand-worked: the sliding 8x8 square is t px off in frame t -> J = 8(8-t) / (8(8+t)), t = 1..3
    slide_j = np.mean([(8 - t) / (8 + t) for t in (1, 2, 3)])
    rows = {(r["sequence"], r["object"]): r for r in metrics["per_object"]}
    assert rows[("slide", 1)]["J-Mean"] == pytest.approx(slide_j, abs=1e-12)
    assert rows[("slide", 2)]["J-Mean"] == 1.0 and rows[("still", 1)]["J-Mean"] == 1.0
    assert metrics["global"]["J-Mean"] == pytest.approx((slide_j + 2) / 3, abs=1e-12)

    # the same numbers as scoring the written predictions directly
    direct = evaluate_davis(layout, out / "predictions", split="tiny")
    for k in GLOBAL_KEYS:
        assert metrics["global"][k] == pytest.approx(direct.global_metrics[k], abs=1e-12)

    with open(out / "summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    assert len(summary) == 1 and float(summary[0]["J&F-Mean"]) == pytest.approx(
        direct.global_metrics["J&F-Mean"], abs=1e-6
    )
    with open(out / "per_sequence.csv") as fh:
        per = list(csv.DictReader(fh))
    assert [(r["sequence"], r["object"]) for r in per] == [("still", "1"), ("slide", "1"), ("slide", "2")]
    assert {"J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"} <= set(per[0])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["global"] == pytest.approx(metrics["global"])
    assert saved["tracking"]["frames"] == 2 * T and saved["tracking"]["frames_per_second"] > 0
    assert "timestamp" in saved


def test_score_predictions_matches_and_accepts_run_folder(layout, tmp_path):
    ds = DavisDataset(layout, split="tiny")
    out = tmp_path / "run"
    run_vos(CopyFirst, ds, out, overlays=False, progress=False)
    assert not (out / "overlays").exists()
    a = score_predictions(layout, out / "predictions", split="tiny")
    b = score_predictions(layout, out, split="tiny", out_dir=tmp_path / "scored")  # the run folder itself
    assert a["global"] == b["global"]
    assert (tmp_path / "scored" / "summary.csv").is_file()


def test_run_vos_rejects_bad_tracker_output_and_unknown_sequences(layout, tmp_path):
    class Wrong:
        def step(self, frame, masks=None):
            return np.zeros((H - 1, W), np.uint8)

    ds = DavisDataset(layout, split="tiny")
    with pytest.raises(ShapeMismatchError, match="still"):
        run_vos(Wrong, ds, tmp_path / "o", progress=False)
    with pytest.raises(DataError, match="nope"):
        run_vos(CopyFirst, ds, tmp_path / "o", sequences=["nope"], progress=False)


def test_lost_object_is_scored_empty_by_run_vos_but_refused_by_strict_scoring(layout, tmp_path):
    class LosesObjectTwo(CopyFirst):
        def step(self, frame, masks=None):
            out = super().step(frame, masks)
            return out if masks is not None else np.where(out == 2, 0, out)

    ds = DavisDataset(layout, split="tiny")
    metrics = run_vos(LosesObjectTwo, ds, tmp_path / "o", progress=False, overlays=False)
    rows = {(r["sequence"], r["object"]): r for r in metrics["per_object"]}
    assert rows[("slide", 2)]["J-Mean"] == 0.0
    assert metrics["missing_objects"] == {"slide": [2]}
    with pytest.raises(ShapeMismatchError, match="slide"):
        score_predictions(layout, tmp_path / "o" / "predictions", split="tiny")


def test_cli_scores_a_predictions_folder(layout, tmp_path, capsys):
    ds = DavisDataset(layout, split="tiny")
    run_vos(CopyFirst, ds, tmp_path / "run", overlays=False, progress=False)
    rc = corr_main(
        [
            "eval",
            "vos",
            "--davis",
            str(layout),
            "--split",
            "tiny",
            "--predictions",
            str(tmp_path / "run" / "predictions"),
            "--out",
            str(tmp_path / "cli"),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "slide_2" in printed
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["n_objects"] == 3
    rc = corr_main(
        ["eval", "vos", "--davis", str(layout), "--split", "tiny", "--predictions", str(tmp_path / "none")]
    )
    assert rc == 2
    assert "none" in capsys.readouterr().err


def test_cli_tracks_with_the_tracker_from_build_tracker(layout, tmp_path, monkeypatch, capsys):
    api = pytest.importorskip("corr_core.api")
    built = []

    def fake_build_tracker(checkpoint, propagation=None, device="cpu", random_init_seed=None, backend="auto",
                           precision="fp32"):
        built.append((checkpoint, propagation, device, random_init_seed, backend, precision))
        return CopyFirst()

    monkeypatch.setattr(api, "build_tracker", fake_build_tracker)
    rc = corr_main(
        [
            "eval",
            "vos",
            "--davis",
            str(layout),
            "--split",
            "tiny",
            "--random-init",
            "3",
            "--topk",
            "5",
            "--backend",
            "torch",
            "--precision",
            "bf16",
            "--match-precision",
            "bf16",
            "--out",
            str(tmp_path / "cli"),
            "--quiet",
            "--no-overlays",
        ]
    )
    assert rc == 0
    assert built[0] == (None, {"topk": 5, "dtype": "bfloat16"}, "cpu", 3, "torch", "bf16")
    assert len(built) == 2  # one tracker per sequence (CopyFirst has no reset())
    saved = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert saved["model"]["random_init_seed"] == 3
    assert (saved["model"]["backend"], saved["model"]["precision"]) == ("torch", "bf16")
    assert "J&F-Mean" in capsys.readouterr().out


def _resize_one_frame(layout, seq="slide", frame="00003"):
    """Replaces one frame of ``seq`` with a frame of another size (as a damaged export would)."""
    path = layout / "JPEGImages" / "480p" / seq / f"{frame}.jpg"
    Image.fromarray(np.zeros((H + 8, W, 3), np.uint8)).save(path)
    return path


def _conv_tracker():
    """A real Tracker on a tiny stride-8 convolution (what `corr eval vos` builds, but small)."""
    torch = pytest.importorskip("torch")
    from corr_core.propagation.tracker import Tracker

    torch.manual_seed(0)
    return Tracker(torch.nn.Conv2d(3, 8, kernel_size=8, stride=8))


def test_run_vos_names_the_sequence_and_frame_whose_size_changes(layout, tmp_path):
    bad = _resize_one_frame(layout)
    ds = DavisDataset(layout, split="tiny")
    with pytest.raises(ShapeMismatchError) as info:
        run_vos(_conv_tracker, ds, tmp_path / "o", progress=False, overlays=False)
    msg = str(info.value)
    assert "'slide'" in msg and str(bad) in msg  # the sequence and the offending frame file
    assert f"{H + 8}x{W}" in msg and f"{H}x{W}" in msg  # both sizes
    assert "reset()" not in msg  # not the tracker's advice to a programmer
    assert "resize" in msg  # says what to do


def test_cli_reports_a_frame_size_change_on_one_line(layout, tmp_path, monkeypatch, capsys):
    api = pytest.importorskip("corr_core.api")
    bad = _resize_one_frame(layout)
    monkeypatch.setattr(api, "build_tracker", lambda *a, **k: _conv_tracker())
    rc = corr_main(
        ["eval", "vos", "--davis", str(layout), "--split", "tiny", "--random-init", "0",
         "--out", str(tmp_path / "cli"), "--quiet", "--no-overlays"]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("corr eval: error:")
    assert "'slide'" in err[0] and str(bad) in err[0] and "reset()" not in err[0]
