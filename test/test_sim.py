"""MuJoCo scenes: real OSMesa rendering of tiny episodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from corr_core.data.sim import generate_episode, render_episode
from corr_core.data.sim.scene import sample_scene

SIZE = (128, 96)


@pytest.fixture(scope="module")
def frames():
    return list(render_episode(seed=3, num_frames=8, num_objects=5, num_exo=1, size=SIZE))


def test_objects_visible_in_both_cameras_with_shared_ids(frames):
    ego = set(np.unique(frames[0]["cameras"]["ego"]["labels"])) - {0}
    exo = set(np.unique(frames[0]["cameras"]["exo1"]["labels"])) - {0}
    assert len(ego) >= 3 and len(exo) >= 3
    assert ego <= set(range(1, 6)) and exo <= set(range(1, 6))
    assert len(ego & exo) >= 3
    # The same id has similar colour statistics in both cameras (same object, same texture).
    oid = sorted(ego & exo)[0]
    means = [frames[0]["cameras"][c]["rgb"][frames[0]["cameras"][c]["labels"] == oid].mean(0) for c in ("ego", "exo1")]
    assert np.abs(means[0] - means[1]).max() < 60


def test_ego_moves_exo_stays(frames):
    ego_t = [f["cameras"]["ego"]["T_world_cam"] for f in frames]
    exo_t = [f["cameras"]["exo1"]["T_world_cam"] for f in frames]
    assert np.linalg.norm(ego_t[0][:3, 3] - ego_t[-1][:3, 3]) > 0.05
    assert all(np.allclose(t, exo_t[0]) for t in exo_t)
    assert not np.array_equal(frames[0]["cameras"]["ego"]["rgb"], frames[-1]["cameras"]["ego"]["rgb"])
    # A rotation matrix, and the optical z axis points at the table (downwards).
    r = ego_t[0][:3, :3]
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-6) and r[2, 2] < -0.3


def test_scripted_motion_moves_a_mask_in_the_static_camera(frames):
    spec = sample_scene(3, 5, 1)
    moving = [o.id for o in spec.objects if o.motion != "static"]
    assert {o.motion for o in spec.objects} >= {"push", "pick_place"}
    lab0, lab1 = frames[0]["cameras"]["exo1"]["labels"], frames[-1]["cameras"]["exo1"]["labels"]

    def centroid(lab, oid):
        ys, xs = np.nonzero(lab == oid)
        return np.array([ys.mean(), xs.mean()]) if len(ys) else None

    shifts = [np.linalg.norm(centroid(lab0, i) - centroid(lab1, i)) for i in moving
              if centroid(lab0, i) is not None and centroid(lab1, i) is not None]
    assert shifts and max(shifts) > 2.0
    # Static objects stay put (a moving object may occlude one of them, so most, not all).
    static = [o.id for o in spec.objects if o.motion == "static"]
    still = [np.linalg.norm(centroid(lab0, i) - centroid(lab1, i)) < 1.0 for i in static
             if centroid(lab0, i) is not None and centroid(lab1, i) is not None]
    assert still and sum(still) >= len(still) / 2


def test_lookalike_copies_shape_size_and_texture():
    spec = sample_scene(11, 5, 1)
    look = [o for o in spec.objects if o.lookalike_of is not None]
    assert len(look) == 1
    src = next(o for o in spec.objects if o.id == look[0].lookalike_of)
    assert (look[0].shape, look[0].size, look[0].texture) == (src.shape, src.size, src.texture)
    assert np.hypot(*(np.array(look[0].start) - src.start)) > 0.05


def test_deterministic_from_seed():
    a = list(render_episode(seed=5, num_frames=2, size=SIZE))
    b = list(render_episode(seed=5, num_frames=2, size=SIZE))
    c = list(render_episode(seed=6, num_frames=2, size=SIZE))
    for fa, fb in zip(a, b, strict=True):
        assert np.array_equal(fa["cameras"]["ego"]["rgb"], fb["cameras"]["ego"]["rgb"])
        assert np.array_equal(fa["cameras"]["exo1"]["labels"], fb["cameras"]["exo1"]["labels"])
    assert not np.array_equal(a[0]["cameras"]["ego"]["rgb"], c[0]["cameras"]["ego"]["rgb"])


def test_depth_is_metric_and_plausible(frames):
    cam = frames[0]["cameras"]["exo1"]
    on_objects = cam["depth"][cam["labels"] > 0]
    assert on_objects.size and 0.3 < on_objects.min() and on_objects.max() < 2.0
    assert (cam["depth"] > 0).all()


def test_written_episode_layout_meta_and_bag(tmp_path):
    from rosbags.highlevel import AnyReader

    info = generate_episode(tmp_path, seed=2, num_frames=4, size=SIZE, name="ep")
    meta = json.loads(info.meta_path.read_text())
    ids = {o["id"] for o in meta["scene"]["objects"]}
    for cam in ("ego", "exo1"):
        ann = Image.open(tmp_path / cam / "Annotations" / "96p" / "ep" / "00003.png")
        assert ann.mode == "P"
        assert set(np.unique(np.array(ann))) - {0} <= ids
        assert len(list((tmp_path / cam / "JPEGImages" / "96p" / "ep").glob("*.jpg"))) == 4
        depth = np.array(Image.open(tmp_path / cam / "Depth" / "ep" / "00000.png"))
        assert depth.dtype == np.uint16 and depth.max() > 300
        assert (tmp_path / cam / "ImageSets" / "2016" / "val.txt").read_text().split() == ["ep"]
        assert len(meta["cameras"][cam]["T_world_cam"]) == 4
    with AnyReader([info.bag_path]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts == {"/ego/image_raw": 4, "/ego/camera_info": 4, "/exo1/image_raw": 4, "/exo1/camera_info": 4}
