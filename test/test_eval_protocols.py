"""JHMDB / VIP / EgoExo evaluation runners, `corr eval jhmdb|vip|egoexo|compare`, on tiny data sets.

The feature model is a fixed colour embedding: every pixel becomes the one-hot vector of its
palette colour, averaged over 8 x 8 cells. Frames are mosaics of 8 x 8 blocks with a different
palette colour each, so a cell's feature matches exactly the cells of the same colour (dot product
1) and nothing else (0): propagation follows the content exactly, and the expected scores can be
worked out by hand.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from PIL import Image

from corr_core.cli import main as corr_main
from corr_core.data.labels import read_label_png, write_label_png
from corr_core.errors import DataError
from corr_core.evaluation.egoexo import run_egoexo_pairs
from corr_core.evaluation.jhmdb import JHMDB_PROPAGATION, jhmdb_config, run_jhmdb
from corr_core.evaluation.vip import VIP_PROPAGATION, run_vip
from corr_core.metrics.vip import ConfusionHistogram
from corr_core.propagation.crw import PropagationConfig
from corr_core.propagation.tracker import Tracker

H, W, T = 64, 96, 4  # 8 x 12 feature cells
CH, CW = H // 8, W // 8
PALETTE = np.array(
    [(r, g, b) for r in range(25, 250, 50) for g in range(25, 250, 50) for b in (30, 90, 150, 210)]
)


class PaletteCells(torch.nn.Module):
    """One-hot of the nearest palette colour, averaged over 8 x 8 cells: ``(1, 100, H/8, W/8)``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("palette", torch.tensor(PALETTE, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = ((x[:, :, None] * 255.0 - self.palette.t()[None, :, :, None, None]) ** 2).sum(1)
        onehot = F.one_hot(d.argmin(1), len(PALETTE)).permute(0, 3, 1, 2).float()
        return F.avg_pool2d(onehot, 8, ceil_mode=True)


def mosaic(seed: int) -> np.ndarray:
    """``(CH, CW)`` distinct palette indices."""
    return np.random.default_rng(seed).permutation(len(PALETTE))[: CH * CW].reshape(CH, CW)


def render(cells: np.ndarray) -> np.ndarray:
    return np.kron(PALETTE[cells], np.ones((8, 8, 1))).astype(np.uint8)


def up(cell_labels: np.ndarray) -> np.ndarray:
    return np.kron(cell_labels, np.ones((8, 8), dtype=cell_labels.dtype))


# --------------------------------------------------------------------------------------------
# JHMDB
# --------------------------------------------------------------------------------------------

# 15 joints on cell corners (pixel 8 * c is cell c), cells x 2..7, y 2..6; corners (2, 2), (7, 6). Their
# label maps (cells -2..+1 around the joint) stay clear of the right edge, where 'walk' wraps around.
JOINT_CELLS = np.array(
    [
        (2, 2),
        (7, 6),
        (4, 2),
        (6, 2),
        (7, 2),
        (2, 4),
        (4, 4),
        (5, 5),
        (6, 4),
        (7, 5),
        (2, 6),
        (3, 3),
        (4, 6),
        (6, 6),
        (7, 3),
    ]
)
JOINTS0 = JOINT_CELLS * 8.0  # (15, 2) x, y in 0-based pixels
SIZE = 0.6 * math.hypot(5 * 8, 4 * 8)  # PCK reference size: 0.6 x bbox diagonal of the joints
# Reading a sigma-0.5 map back (top 3 cells: the peak 1 and the up/left neighbours exp(-2), ties
# to the lower index) lands this many pixels up and left of the joint.
BIAS = 8 * math.exp(-2) / (1 + 2 * math.exp(-2))
DRIFT = 3.5  # px per frame the ground truth of the 'drift' video moves while its frames stand still


def make_jhmdb(root):
    """Three videos of T frames: 'still' (static), 'walk' (content and joints move one cell right per
    frame), 'drift' (static frames, joints move DRIFT px right per frame)."""
    cells = mosaic(1)
    for name, content_shift, joint_shift in (("still", 0, 0.0), ("walk", 1, 8.0), ("drift", 0, DRIFT)):
        frames = root / "Frames" / "act" / name
        frames.mkdir(parents=True)
        for t in range(T):
            Image.fromarray(render(np.roll(cells, content_shift * t, axis=1))).save(
                frames / f"{t + 1:05d}.png"
            )
        pos = np.stack([JOINTS0 + [joint_shift * t, 0.0] for t in range(T)])  # (T, 15, 2)
        mat = root / "joint_positions" / "act" / name / "joint_positions.mat"
        mat.parent.mkdir(parents=True)
        scipy.io.savemat(mat, {"pos_img": pos.transpose(2, 1, 0) + 1.0})  # MATLAB 1-based (2, J, T)
    lst = root / "testlist.txt"
    lst.write_text(
        "".join(
            f"Frames/act/{n} joint_positions/act/{n}/joint_positions.mat\n"
            for n in ("still", "walk", "drift")
        )
    )
    return root


def drift_pck(thr: float) -> float:
    """Per-joint PCK of 'drift': the prediction stays put, frame t is off by (t DRIFT + BIAS, BIAS)."""
    errors = [math.hypot(DRIFT * t + BIAS, BIAS) / SIZE for t in range(1, T)]
    return float(np.mean([e <= thr for e in errors]))


@pytest.fixture(scope="module")
def jhmdb_root(tmp_path_factory):
    return make_jhmdb(tmp_path_factory.mktemp("jhmdb"))


def test_tracker_soft_labels_follow_content_with_bounded_memory():
    cfg = jhmdb_config({"context": 2})
    prop = Tracker(PaletteCells(), cfg)
    cells = mosaic(2)
    labels = np.zeros((2, CH, CW), np.float32)
    labels[1, 3, 4] = 1.0
    labels[0] = 1.0 - labels[1]
    prop.start_soft(prop.encode(render(cells)), labels)
    assert prop.memory_frames == 3
    for t in range(1, 6):
        soft = prop.step_soft(prop.encode(render(np.roll(cells, t, axis=1)))).numpy()
        assert prop.memory_frames == 3  # first frame + context, whatever the length
        assert np.unravel_index(soft[1].argmax(), soft[1].shape) == (3, (4 + t) % CW)
        assert soft[1].max() == pytest.approx(1.0, abs=1e-6)


def test_run_jhmdb_scores_static_tracked_and_drifting_videos(jhmdb_root, tmp_path):
    out = tmp_path / "jhmdb"
    metrics = run_jhmdb(
        PaletteCells(), jhmdb_root, jhmdb_root / "testlist.txt", out, image_size=None, progress=False
    )
    thresholds = (0.1, 0.2, 0.3, 0.4, 0.5)
    keys = [f"PCK@{t:g}" for t in thresholds]
    rows = {r["video"]: r for r in metrics["per_video"]}
    assert list(rows) == ["act/still", "act/walk", "act/drift"]
    for k, thr in zip(keys, thresholds, strict=True):
        assert rows["act/still"][k] == 1.0
        assert rows["act/walk"][k] == 1.0  # the propagation tracked the moving content
        assert rows["act/drift"][k] == pytest.approx(drift_pck(thr))
        # pooled per joint: 3 + 3 + 3 * drift correct out of 9 frames, the same for every joint
        assert metrics["global"][k] == pytest.approx((2 + drift_pck(thr)) / 3)
    assert [drift_pck(t) for t in thresholds] == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    assert rows["act/drift"]["counted"] == 15 * (T - 1)

    kp = np.load(out / "keypoints" / "act" / "walk.npy")
    assert kp.shape == (T, 15, 2)
    np.testing.assert_allclose(kp[-1], JOINTS0 + [8.0 * (T - 1) - BIAS, -BIAS], atol=1e-4)

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["global"] == pytest.approx(metrics["global"])
    assert saved["settings"]["propagation"]["radius"] == JHMDB_PROPAGATION["radius"] == 3.0
    assert saved["settings"]["propagation"]["context"] == 8 and saved["counts"]["videos"] == 3
    assert saved["per_joint"]["neck"]["PCK@0.5"] == 1.0
    with open(out / "summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    assert float(summary[0]["PCK@0.3"]) == pytest.approx((2 + 2 / 3) / 3, abs=1e-6)
    with open(out / "per_video.csv") as fh:
        assert [r["video"] for r in csv.DictReader(fh)] == ["act/still", "act/walk", "act/drift"]

    # without a list every video under the root; a Tracker is accepted in place of the model
    again = run_jhmdb(
        Tracker(PaletteCells(), jhmdb_config()),
        jhmdb_root,
        None,
        tmp_path / "again",
        image_size=None,
        progress=False,
    )
    assert sorted(r["video"] for r in again["per_video"]) == ["act/drift", "act/still", "act/walk"]
    assert again["global"] == pytest.approx(metrics["global"])


def test_cli_jhmdb_uses_the_loaded_model_and_paper_defaults(jhmdb_root, tmp_path, monkeypatch, capsys):
    api = pytest.importorskip("corr_core.api")
    loaded = []

    def fake_load(checkpoint, device="cpu", random_init_seed=None, arch="resnet18_s8"):
        loaded.append((checkpoint, device, random_init_seed))
        return PaletteCells(), {"arch": "palette"}

    monkeypatch.setattr(api, "load_feature_model", fake_load)
    out = tmp_path / "cli"
    argv = ["eval", "jhmdb", "--root", str(jhmdb_root), "--filelist", "testlist.txt", "--random-init", "4"]
    rc = corr_main([*argv, "--native-size", "--out", str(out), "--quiet", "--max-videos", "2"])
    assert rc == 0, capsys.readouterr().err
    assert loaded == [(None, "cpu", 4)]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["model"]["random_init_seed"] == 4
    assert saved["model"]["propagation"] == {"topk": 10, "context": 8, "radius": 3.0, "temperature": 0.05}
    assert saved["global"]["PCK@0.1"] == 1.0 and saved["counts"]["videos"] == 2
    assert "PCK@0.1" in capsys.readouterr().out

    rc = corr_main(["eval", "jhmdb", "--root", str(tmp_path / "nowhere"), "--random-init"])
    assert rc == 2 and "nowhere" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# VIP
# --------------------------------------------------------------------------------------------


def part_cells() -> np.ndarray:
    """Part ids per cell: full-height hair (2) and face (13) bands, an unlabelled (255) column.

    Only vertical borders: the tracker's bilinear label resizing is exact on them (a block corner
    would lose its corner pixel to the background), so a perfect propagation scores exactly 1.
    """
    lab = np.zeros((CH, CW), np.uint8)
    lab[:, 3:5] = 2
    lab[:, 6:8] = 13
    lab[:, 10] = 255
    return lab


def make_vip(root):
    """'still' (static), 'walk' (content and parts move one cell right per frame), 'drift' (static
    frames, annotation moves one cell right per frame)."""
    cells, parts = mosaic(3), part_cells()
    for name, content_shift, part_shift in (("still", 0, 0), ("walk", 1, 1), ("drift", 0, 1)):
        for t in range(T):
            frame = root / "Images" / name / f"{t:06d}.jpg"
            frame.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render(np.roll(cells, content_shift * t, axis=1))).save(
                frame, quality=100, subsampling=0
            )
            ann = root / "Annotations" / "Category_ids" / name / f"{t:06d}.png"
            ann.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(up(np.roll(parts, part_shift * t, axis=1)), mode="L").save(ann)
    (root / "lists").mkdir()
    (root / "lists" / "val_videos.txt").write_text("videos/still\nvideos/walk\nvideos/drift\n")
    return root


@pytest.fixture(scope="module")
def vip_root(tmp_path_factory):
    return make_vip(tmp_path_factory.mktemp("vip"))


def vip_tracker():
    return Tracker(PaletteCells(), PropagationConfig(**VIP_PROPAGATION))


def test_run_vip_pools_one_histogram_over_frames_and_videos(vip_root, tmp_path):
    out = tmp_path / "vip"
    metrics = run_vip(vip_tracker, vip_root, out, split="val_videos", size=None, progress=False)
    rows = {r["video"]: r for r in metrics["per_video"]}
    assert list(rows) == ["still", "walk", "drift"]
    assert rows["still"]["mIoU"] == 1.0 and rows["walk"]["mIoU"] == 1.0
    assert rows["still"]["scored_frames"] == T  # the first frame is scored, as the reference does

    # 'drift': the prediction stays at frame 0's parts; hand-made histogram of what must be scored
    parts0 = up(part_cells())
    pred0 = np.where(parts0 == 255, 0, parts0)
    drift, pooled = ConfusionHistogram(), ConfusionHistogram()
    for t in range(T):
        gt = up(np.roll(part_cells(), t, axis=1))
        drift.add(gt, pred0)
        pooled.add(parts0, pred0)  # still
        pooled.add(gt, np.where(gt == 255, 0, gt))  # walk: perfect where labelled (255 is ignored)
        pooled.add(gt, pred0)
    assert rows["drift"]["mIoU"] == pytest.approx(drift.summary()["mIoU"])
    assert 0 < rows["drift"]["mIoU"] < 1
    assert metrics["global"]["mIoU"] == pytest.approx(pooled.summary()["mIoU"])
    assert metrics["per_class_iou"]["face"] == pytest.approx(pooled.iou()[13])
    assert metrics["counts"]["scored_frames"] == 3 * T

    pred = read_label_png(out / "predictions" / "walk" / f"{T - 1:06d}.png")
    gt = up(np.roll(part_cells(), T - 1, axis=1))
    np.testing.assert_array_equal(pred[gt != 255], gt[gt != 255])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["global"]["mIoU"] == pytest.approx(metrics["global"]["mIoU"])
    with open(out / "summary.csv") as fh:
        assert float(next(csv.DictReader(fh))["mIoU"]) == pytest.approx(metrics["global"]["mIoU"], abs=1e-6)
    with open(out / "per_video.csv") as fh:
        assert [r["video"] for r in csv.DictReader(fh)] == ["still", "walk", "drift"]

    # not scoring the given frame, one video, frames tracked at twice the size
    one = run_vip(
        vip_tracker,
        vip_root,
        tmp_path / "one",
        videos=["still"],
        size=(2 * H, 2 * W),
        score_first_frame=False,
        progress=False,
    )
    assert one["counts"]["scored_frames"] == T - 1 and one["global"]["mIoU"] == 1.0


def test_cli_vip_builds_the_tracker_with_vip_settings(vip_root, tmp_path, monkeypatch, capsys):
    api = pytest.importorskip("corr_core.api")
    built = []

    def fake_build_tracker(checkpoint, propagation=None, device="cpu", random_init_seed=None, backend="auto",
                           precision="fp32"):
        built.append((checkpoint, propagation, random_init_seed, backend, precision))
        return Tracker(PaletteCells(), PropagationConfig(**propagation))

    monkeypatch.setattr(api, "build_tracker", fake_build_tracker)
    out = tmp_path / "cli"
    argv = [
        "eval",
        "vip",
        "--root",
        str(vip_root),
        "--videos",
        "still",
        "walk",
        "--random-init",
        "--radius",
        "20",
        "--backend",
        "onnxruntime",
    ]
    assert corr_main([*argv, "--native-size", "--out", str(out), "--quiet"]) == 0
    assert built[0] == (None, {"topk": 10, "context": 8, "radius": 20.0, "temperature": 0.05}, 0, "onnxruntime",
                        "fp32")
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["global"]["mIoU"] == 1.0 and saved["counts"]["videos"] == 2
    assert "mIoU" in capsys.readouterr().out
    assert corr_main(["eval", "vip", "--root", str(vip_root), "--split", "nope", "--random-init"]) == 2
    assert "nope" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# EgoExo
# --------------------------------------------------------------------------------------------


def rect(rows, cols, shape=(360, 480)) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    m[rows[0] : rows[1], cols[0] : cols[1]] = 1
    return m


def test_run_egoexo_pairs_scores_both_directions(tmp_path):
    square = rect((100, 200), (100, 200))
    for name, mask in {"sq": square, "moved": rect((100, 200), (150, 250))}.items():
        write_label_png(tmp_path / "masks" / f"{name}.png", mask)

    def item(frame, gt, pred, conf, cam):
        return {
            "take": "t1",
            "object": "cup",
            "camera": cam,
            "frame": frame,
            "gt_mask": gt,
            "pred_mask": pred,
            "confidence": conf,
        }

    pairs = {
        "ego-exo": [
            item(0, "masks/sq.png", "masks/sq.png", 0.9, "cam01"),
            item(1, None, None, 0.2, "cam01"),  # absent and predicted absent
        ],
        "exo-ego": [item(0, "masks/sq.png", "masks/moved.png", 0.8, "aria")],
    }
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(pairs))
    metrics = run_egoexo_pairs(path, tmp_path / "out")
    g = metrics["global"]
    assert g["ego-exo/iou"] == pytest.approx(1.0, abs=1e-6) and g["ego-exo/location_error"] == 0.0
    assert g["ego-exo/balanced_accuracy"] == 1.0 and metrics["ego-exo"]["n_items"] == 2
    assert g["exo-ego/iou"] == pytest.approx(5000 / 15000, abs=1e-6)  # half overlap: 100x50 of 100x150
    assert g["exo-ego/location_error"] == pytest.approx(50 / math.hypot(480, 480))  # centres 149 -> 199
    assert metrics["directions"] == ["ego-exo", "exo-ego"]
    with open(tmp_path / "out" / "items.csv") as fh:
        items = list(csv.DictReader(fh))
    assert [(r["direction"], r["gt_exists"], r["pred_exists"]) for r in items] == [
        ("ego-exo", "1", "1"),
        ("ego-exo", "0", "0"),
        ("exo-ego", "1", "1"),
    ]
    assert items[1]["iou"] == ""
    with open(tmp_path / "out" / "summary.csv") as fh:
        assert [r["direction"] for r in csv.DictReader(fh)] == ["ego-exo", "exo-ego"]

    one = tmp_path / "one.json"
    one.write_text(json.dumps({"ego-exo": pairs["ego-exo"]}))
    with pytest.raises(DataError, match="one.json"):
        run_egoexo_pairs(one, tmp_path / "o2", require_both=True)
    assert corr_main(["eval", "egoexo", "--pairs", str(one), "--out", str(tmp_path / "o3")]) == 0
    assert json.loads((tmp_path / "o3" / "metrics.json").read_text())["directions"] == ["ego-exo"]


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


def write_metrics(folder, glob, **more):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"protocol": "p", "global": glob, **more}))
    return folder / "metrics.json"


def test_compare_prints_side_by_side_table_with_deltas(tmp_path, capsys):
    a = write_metrics(tmp_path / "base", {"J&F-Mean": 0.5, "J-Mean": 0.4, "F-Mean": 0.6})
    b = write_metrics(tmp_path / "ours", {"J&F-Mean": 0.625, "J-Mean": 0.45, "F-Mean": None, "extra": 1.0})
    out = tmp_path / "cmp.md"
    assert corr_main(["eval", "compare", str(a), str(b.parent), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in printed.splitlines()
        if line.startswith("| ")
    }
    assert rows["metric"] == ["base", "ours", "delta (ours - base)"]
    assert rows["J&F-Mean"] == ["0.5000", "0.6250", "+0.1250"]
    assert rows["J-Mean"] == ["0.4000", "0.4500", "+0.0500"]
    assert rows["F-Mean"] == ["0.6000", "n/a", "-"] and rows["extra"] == ["-", "1.0000", "-"]
    assert out.read_text().strip() in printed

    # the alias, three runs (no delta column), clashing folder names labelled by checkpoint
    c = write_metrics(tmp_path / "x" / "ours", {"J&F-Mean": 0.7}, model={"checkpoint": "runs/fc/model_b"})
    d = write_metrics(tmp_path / "y" / "ours", {"J&F-Mean": 0.8}, model={"checkpoint": "runs/fc/model_c"})
    assert corr_main(["eval", "--compare", str(a), str(c), str(d)]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| metric"))
    assert [h.strip() for h in header.split("|")[1:-1]] == ["metric", "base", "model_b", "model_c"]


def test_compare_pairs_objects_and_bootstraps_over_sequences(tmp_path, capsys):
    from corr_core.commands.eval import paired_difference

    def per_object(values):
        return [{"sequence": f"s{i // 2}", "object": i % 2 + 1, "J&F-Mean": v} for i, v in enumerate(values)]

    base = [0.5, 0.4, 0.6, 0.3, 0.7, 0.2]
    # b is better on every object of s0 and s1 by 0.1 and worse on s2's two objects by 0.05
    ours = [0.6, 0.5, 0.7, 0.4, 0.65, 0.15]
    a = write_metrics(tmp_path / "base", {"J&F-Mean": 0.45}, per_object=per_object(base))
    b = write_metrics(tmp_path / "ours", {"J&F-Mean": 0.5}, per_object=per_object(ours) + [
        {"sequence": "s9", "object": 1, "J&F-Mean": 1.0}])  # not in base: not paired
    res = paired_difference(json.loads(a.read_text()), json.loads(b.read_text()), n_boot=4000)
    assert (res["objects"], res["sequences"]) == (6, 3)
    assert res["mean"] == pytest.approx((4 * 0.1 - 2 * 0.05) / 6)
    assert (res["b_better"], res["a_better"], res["ties"]) == (4, 2, 0)
    # a resample of sequences averages -0.05 (all s2) .. +0.1 (no s2): the interval lies inside
    lo, hi = res["ci95"]
    assert -0.05 - 1e-9 <= lo < res["mean"] < hi <= 0.1 + 1e-9 and lo < 0.0
    assert corr_main(["eval", "compare", str(a), str(b)]) == 0
    assert "paired over 6 objects in 3 sequences: ours - base J&F-Mean = +0.0500" in capsys.readouterr().out
    # runs without per-object results (other tasks) are not paired
    c = write_metrics(tmp_path / "c", {"J&F-Mean": 0.4})
    assert paired_difference(json.loads(a.read_text()), json.loads(c.read_text())) is None


@pytest.mark.parametrize(
    "content", ["[1, 2]", '{"J-Mean": 0.5}', '{"global": {"J-Mean": "high"}}', "{not json", '{"global": []}']
)
def test_compare_names_the_file_of_wrong_form(tmp_path, capsys, content):
    good = write_metrics(tmp_path / "good", {"J-Mean": 0.5})
    bad = tmp_path / "bad_run" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text(content)
    assert corr_main(["eval", "compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and err.count("\n") == 1
    from corr_core.commands.eval import compare_runs

    with pytest.raises(DataError, match="bad_run"):
        compare_runs([good, bad])


def test_one_tracker_protocol_for_every_evaluation():
    """The Tracker satisfies the shared protocols; the per-protocol names are that protocol."""
    from corr_core.evaluation import protocol, vip, vos

    tracker = Tracker(PaletteCells(), jhmdb_config())
    assert isinstance(tracker, protocol.LabelTracker) and isinstance(tracker, protocol.SoftLabelTracker)
    assert vos.VosTracker is protocol.LabelTracker and vip.VipTracker is protocol.LabelTracker

    class StepOnly:
        def step(self, frame, masks=None):
            return np.zeros(frame.shape[:2], np.uint8)

    assert isinstance(StepOnly(), protocol.LabelTracker)
    assert not isinstance(StepOnly(), protocol.SoftLabelTracker)
    labels = protocol.checked_labels(torch.zeros(2, 3, dtype=torch.int64), (2, 3), "video 'v', frame 1")
    assert isinstance(labels, np.ndarray) and labels.shape == (2, 3)
    for bad in (np.zeros((2, 4), np.uint8), np.zeros((2, 3), np.float32)):
        with pytest.raises(DataError, match="video 'v', frame 1"):
            protocol.checked_labels(bad, (2, 3), "video 'v', frame 1")
