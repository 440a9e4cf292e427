"""DavisDataset on a tiny DAVIS layout built in tmp_path, plus a smoke test on the shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corr_core.data.davis import DavisDataset
from corr_core.data.labels import write_label_png
from corr_core.errors import DataError, ShapeMismatchError
from corr_core.testing import davis_dev_root

H, W = 12, 16


def _frame(seq_index: int, i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([xx * 12 + i * 5, yy * 15 + seq_index * 40, (xx + yy) * 6], -1).astype(np.uint8)


def _labels(i: int, n_objects: int) -> np.ndarray:
    lab = np.zeros((H, W), np.uint8)
    for k in range(1, n_objects + 1):
        lab[k * 2 : k * 2 + 2, i : i + 4] = k
    return lab


def _build(root: Path, seqs: dict[str, int], n_frames: int = 3, res: str = "480p") -> Path:
    """seqs: sequence name -> number of objects."""
    for s, (name, n_obj) in enumerate(seqs.items()):
        img_dir = root / "JPEGImages" / res / name
        ann_dir = root / "Annotations" / res / name
        img_dir.mkdir(parents=True)
        for i in range(n_frames):
            Image.fromarray(_frame(s, i)).save(img_dir / f"{i:05d}.jpg", quality=100)
            write_label_png(ann_dir / f"{i:05d}.png", _labels(i, n_obj))
    sets = root / "ImageSets" / "2016"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("\n".join(seqs) + "\n")
    (sets / "val.txt").write_text(list(seqs)[-1] + "\n")
    return root


def test_reads_frames_annotations_and_ids(tmp_path: Path) -> None:
    root = _build(tmp_path / "davis", {"cows": 1, "dogs": 3})
    ds = DavisDataset(root, split="train")
    assert ds.sequences == ["cows", "dogs"] and len(ds) == 2
    assert [p.name for p in ds.frames("dogs")] == ["00000.jpg", "00001.jpg", "00002.jpg"]
    frame = ds.read_frame("dogs", 2)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    assert np.abs(frame.astype(int) - _frame(1, 2)).mean() < 3  # RGB order, right file
    labels = ds.read_annotation("dogs", 1)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, _labels(1, 3))
    assert ds.object_ids("dogs") == [1, 2, 3] and ds.object_ids("cows") == [1]
    assert len(ds.annotations("cows")) == 3
    with pytest.raises(IndexError):
        ds.read_frame("cows", 3)


def test_split_choices(tmp_path: Path) -> None:
    root = _build(tmp_path / "davis", {"b": 1, "a": 1, "c": 1})
    assert DavisDataset(root, split="val").sequences == ["c"]
    assert DavisDataset(root).sequences == ["a", "b", "c"]  # all folders
    custom = tmp_path / "mine.txt"
    custom.write_text("c\n\na\n")
    assert DavisDataset(root, split=custom).sequences == ["c", "a"]
    assert DavisDataset(root, split=str(custom)).sequences == ["c", "a"]


def test_layout_errors_name_the_path(tmp_path: Path) -> None:
    root = _build(tmp_path / "davis", {"cows": 1, "dogs": 1})
    with pytest.raises(DataError, match="nowhere"):
        DavisDataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"JPEGImages/1080p.*480p"):
        DavisDataset(root, resolution="1080p")
    with pytest.raises(DataError, match=r"ImageSets/2016/test\.txt"):
        DavisDataset(root, split="test")
    (root / "ImageSets" / "2016" / "train.txt").write_text("cows\nsheep\n")
    with pytest.raises(DataError, match=r"sheep.*JPEGImages/480p/sheep"):
        DavisDataset(root, split="train")


def test_annotation_problems(tmp_path: Path) -> None:
    root = _build(tmp_path / "davis", {"cows": 1, "dogs": 1, "owls": 1})
    ann = root / "Annotations" / "480p"
    (ann / "cows" / "00002.png").unlink()
    write_label_png(ann / "dogs" / "00001.png", np.zeros((H + 1, W), np.uint8))
    Image.fromarray(np.zeros((H, W), np.uint8), mode="L").save(ann / "owls" / "00000.png")
    ds = DavisDataset(root)
    with pytest.raises(DataError, match=r"2 annotation PNGs.*3 frames"):
        ds.annotations("cows")
    assert len(ds.annotations("cows", require_all=False)) == 2
    with pytest.raises(DataError, match=r"Annotations/480p/cows/00002\.png"):
        ds.read_annotation("cows", 2)
    with pytest.raises(ShapeMismatchError, match=r"dogs/00001\.png.*16x13.*16x12"):
        ds.read_annotation("dogs", 1)
    with pytest.raises(DataError, match=r"owls/00000\.png.*palette"):
        ds.object_ids("owls")


def test_shared_davis_2016_240p_smoke() -> None:
    root = davis_dev_root()
    if root is None:
        pytest.skip("shared data davis2016-train not found (set CORR_SHARED_DATA)")
    ds = DavisDataset(root, resolution="240p", split="train")
    assert len(ds) > 1
    seq = ds.sequences[0]
    frame = ds.read_frame(seq, 0)
    labels = ds.read_annotation(seq, len(ds.frames(seq)) - 1)
    assert frame.shape[0] == 240 and frame.shape[2] == 3 and frame.std() > 10
    assert labels.shape == frame.shape[:2]
    assert len(ds.annotations(seq)) == len(ds.frames(seq))
    assert ds.object_ids(seq), "DAVIS first frames annotate at least one object"


def test_one_split_reader_for_the_dataset_and_the_metrics(tmp_path: Path) -> None:
    """DavisDataset and evaluate_davis read split arguments the same way (one reader)."""
    from corr_core.metrics.davis import evaluate_davis

    root = _build(tmp_path / "davis", {"a": 1, "b": 2})
    (root / "ImageSets" / "2017").mkdir()
    (root / "ImageSets" / "2017" / "dev.txt").write_text("# the dev split\nb\n\n")
    preds = tmp_path / "preds"
    for i, ann in enumerate(sorted((root / "Annotations" / "480p" / "b").glob("*.png"))):
        write_label_png(preds / "b" / ann.name, _labels(i, 2))
    for split in ("dev", "dev.txt", "ImageSets/2017/dev.txt", root / "ImageSets" / "2017" / "dev.txt"):
        assert DavisDataset(root, split=split).sequences == ["b"], split  # comment skipped, 2017 found
        assert evaluate_davis(root, preds, split=split).sequences == ["b"], split
    (root / "ImageSets" / "2017" / "empty.txt").write_text("# nothing\n")
    for make in (lambda s: DavisDataset(root, split=s), lambda s: evaluate_davis(root, preds, split=s)):
        with pytest.raises(DataError, match=r"empty\.txt lists no sequences"):
            make("empty")
        with pytest.raises(DataError, match=r"ImageSets/2016/nope\.txt"):
            make("nope")


def test_void_id_is_defined_once() -> None:
    from corr_core.data import davis
    from corr_core.metrics import davis as metrics_davis

    assert davis.VOID_ID == 255 and metrics_davis.VOID_LABEL is davis.VOID_ID
    labels = np.array([[0, 255, 3]], np.uint8)
    out = davis.void_to_background(labels)
    assert out.dtype == np.uint8 and out.tolist() == [[0, 0, 3]] and labels[0, 1] == 255
