"""``corr bag process --crossview``: a recording with masks on the ego camera only; the other
camera gets the ego objects through the shipped PCC model, with the cameras' poses and the ego
depth read from the bag (``--rig``, ``--depth``), as the live node would from the same topics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from corr_core.commands.bag_process import process_bag
from corr_core.crossview import SHIPPED_PCC
from corr_core.errors import ConfigError

pytestmark = pytest.mark.slow

PCC = f"corr_core/assets/checkpoints/{SHIPPED_PCC}.safetensors"
FRAMES = 3


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    """A rendered episode (seed 7, as the node test) with its bag, and a rig of moving cameras."""
    from corr_core.data.sim import generate_episode

    root = tmp_path_factory.mktemp("xv_bag")
    info = generate_episode(root, seed=7, num_frames=FRAMES, name="ep", hidden_per_camera=1)
    rig = root / "rig.yaml"
    rig.write_text(yaml.safe_dump({"frame": "world", "cameras": {c: {"moving": True} for c in ("ego", "exo1")}}))
    truth = {c: root / c / "Annotations" / "240p" / "ep" for c in ("ego", "exo1")}
    return {"bag": info.bag_path, "rig": rig, "truth": truth, "mask": truth["ego"] / "00000.png"}


def read_out(path):
    from rosbags.highlevel import AnyReader

    from corr_core.data.bag import decode_image

    labels, summaries = [], []
    with AnyReader([path]) as reader:
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == "/corr/summary":
                summaries.append(json.loads(msg.data))
            elif conn.topic == "/exo1/labels":
                labels.append(decode_image(msg))
    return labels, summaries


@pytest.mark.parametrize("geometry", [False, True])
def test_exo1_gets_the_ego_objects_from_a_bag_with_and_without_geometry(episode, tmp_path, geometry):
    from corr_core.data.labels import read_label_png

    extra = {"rig": episode["rig"], "depth": True} if geometry else {}
    report = process_bag(episode["bag"], tmp_path / "out", masks={"ego": str(episode["mask"])}, random_init_seed=0,
                         propagation={"topk": 5, "context": 2, "radius": 4.0}, progress=False, crossview=PCC,
                         anchor="ego", **extra)
    assert report["sets"] == FRAMES and not any("exo1/no initial mask" in k for k in report["drops"])
    labels, summaries = read_out(tmp_path / "out")
    assert len(labels) == FRAMES  # exo1 labelled from the first frame on, without a mask of its own
    given = set(np.unique(read_label_png(episode["mask"])).tolist()) - {0}
    found = set(np.unique(labels[0]).tolist()) - {0}
    assert found and found <= given
    truth = read_label_png(episode["truth"]["exo1"] / "00000.png")
    ious = [np.sum((labels[0] == i) & (truth == i)) / np.sum((labels[0] == i) | (truth == i)) for i in found]
    assert max(ious) > 0.5, ious
    first = summaries[0]
    assert first["cameras"]["exo1"]["matched"]
    assert first["cameras"]["exo1"]["geometry"] is geometry and first["cameras"]["exo1"]["depth"] is geometry
    assert set(first["objects"]) == {str(i) for i in given}


def test_cross_view_mistakes_are_named(episode, tmp_path):
    from corr_core.data.bag import BagWriter

    common = {"masks": {"ego": str(episode["mask"])}, "random_init_seed": 0, "progress": False}
    with pytest.raises(ConfigError, match="--anchor, --rig and --depth need --crossview"):
        process_bag(episode["bag"], tmp_path / "a", rig=episode["rig"], **common)
    with pytest.raises(ConfigError, match="--depth needs --rig"):
        process_bag(episode["bag"], tmp_path / "b", crossview=PCC, depth=True, **common)
    with pytest.raises(ConfigError, match=r"--anchor is 'wrist', not one of the cameras \['ego', 'exo1'\]"):
        process_bag(episode["bag"], tmp_path / "c", crossview=PCC, anchor="wrist", **common)
    plain = tmp_path / "plain"  # a recording without depth
    with BagWriter(plain) as w:
        for cam in ("ego", "exo1"):
            w.add_image(f"/{cam}/image_raw", 1, f"{cam}_optical_frame", np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(ConfigError, match="the bag has no /ego/depth_registered/image_rect"):
        process_bag(plain, tmp_path / "d", crossview=PCC, rig=episode["rig"], depth=True, **common)


def test_an_interrupted_cross_view_run_resumes(episode, tmp_path):
    args = {"masks": {"ego": str(episode["mask"])}, "random_init_seed": 0, "progress": False, "crossview": PCC,
            "rig": episode["rig"], "depth": True, "checkpoint_every": 1}
    with pytest.raises(KeyboardInterrupt):
        process_bag(episode["bag"], tmp_path / "out", stop_after=2, **args)
    report = process_bag(episode["bag"], tmp_path / "out", resume=True, **args)
    assert report["resumed_from"] == 2 and report["sets"] == FRAMES
    labels, summaries = read_out(tmp_path / "out")
    assert len(labels) == FRAMES and labels[-1].any()  # exo1 goes on from its matched labels
    assert summaries[-1]["cameras"]["exo1"]["geometry"] is True
