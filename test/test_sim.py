"""MuJoCo tabletop episodes: real OSMesa rendering of tiny episodes, files, metadata and the bag."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from corr_core.cli import main as corr_main
from corr_core.data.bag import decode_pose
from corr_core.data.sim import generate_episode, render_episode, sample_scene
from corr_core.data.sim.motion import plan_trajectories
from corr_core.errors import ConfigError

SIZE = (160, 120)
FRAMES = 6
OBJECTS = 5


def _push_seed() -> int:
    """The first seed whose first scripted event (of a 6-frame episode) is a push."""
    return next(s for s in range(100) if sample_scene(s, OBJECTS, 1, FRAMES).events[0].kind == "push")


SEED = _push_seed()


@pytest.fixture(scope="module")
def frames():
    return list(render_episode(seed=SEED, num_frames=FRAMES, num_objects=OBJECTS, num_exo=1, size=SIZE))


def _centroid(labels: np.ndarray, oid: int) -> np.ndarray | None:
    ys, xs = np.nonzero(labels == oid)
    return np.array([ys.mean(), xs.mean()]) if len(ys) else None


def test_frames_have_the_documented_arrays(frames):
    assert len(frames) == FRAMES and [f["index"] for f in frames] == list(range(FRAMES))
    stamps = [f["stamp_ns"] for f in frames]
    assert np.all(np.diff(stamps) == 100_000_000)
    for cam in ("ego", "exo1"):
        c = frames[0]["cameras"][cam]
        assert c["rgb"].shape == (SIZE[1], SIZE[0], 3) and c["rgb"].dtype == np.uint8
        assert c["labels"].shape == (SIZE[1], SIZE[0]) and c["depth"].dtype == np.float32
        assert c["K"].shape == (3, 3) and c["T_world_cam"].shape == (4, 4)


def test_objects_visible_in_both_cameras_with_the_same_ids(frames):
    cams = frames[0]["cameras"]
    ids = {c: set(np.unique(cams[c]["labels"]).tolist()) - {0} for c in ("ego", "exo1")}
    assert ids["ego"] <= set(range(1, OBJECTS + 1)) and ids["exo1"] <= set(range(1, OBJECTS + 1))
    shared = ids["ego"] & ids["exo1"]
    assert len(shared) >= 3
    # The same id is the same object: its mean colour agrees between the two views.
    diffs = []
    for oid in shared:
        masks = [cams[c]["labels"] == oid for c in ("ego", "exo1")]
        if min(m.sum() for m in masks) < 30:
            continue
        means = [cams[c]["rgb"][m].mean(axis=0) for c, m in zip(("ego", "exo1"), masks, strict=True)]
        diffs.append(np.abs(means[0] - means[1]).max())
    assert len(diffs) >= 2 and max(diffs) < 60 and np.median(diffs) < 40


def test_ego_camera_moves_and_exo_camera_stays(frames):
    ego = [f["cameras"]["ego"]["T_world_cam"] for f in frames]
    exo = [f["cameras"]["exo1"]["T_world_cam"] for f in frames]
    assert np.linalg.norm(ego[0][:3, 3] - ego[-1][:3, 3]) > 0.01
    assert not np.allclose(ego[0][:3, :3], ego[-1][:3, :3])
    assert not np.array_equal(frames[0]["cameras"]["ego"]["rgb"], frames[-1]["cameras"]["ego"]["rgb"])
    assert all(np.array_equal(t, exo[0]) for t in exo)
    for t in (ego[0], exo[0]):
        r = t[:3, :3]
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-6) and np.isclose(np.linalg.det(r), 1.0)
        assert r[2, 2] < -0.3  # the optical axis (z) points down at the table


def test_pushed_object_mask_moves_while_unmoved_objects_stay(frames):
    spec = sample_scene(SEED, OBJECTS, 1, FRAMES)
    pushed = spec.events[0].object_id
    moved = {e.object_id for e in spec.events}
    first, last = frames[0]["cameras"]["exo1"]["labels"], frames[-1]["cameras"]["exo1"]["labels"]
    a, b = _centroid(first, pushed), _centroid(last, pushed)
    assert a is not None and b is not None
    assert np.linalg.norm(a - b) > 2.0
    # Objects nobody touches keep their masks (the gripper may occlude one, hence "most").
    still = [
        np.linalg.norm(_centroid(first, o.id) - _centroid(last, o.id)) < 1.0
        for o in spec.objects
        if o.id not in moved
        if _centroid(first, o.id) is not None and _centroid(last, o.id) is not None
    ]
    assert still and sum(still) >= len(still) / 2


def test_depth_intrinsics_and_poses_agree_with_the_scene(frames):
    """Back-projecting object pixels with depth, K and T_world_cam lands on the object."""
    spec = sample_scene(SEED, OBJECTS, 1, FRAMES)
    traj = plan_trajectories(spec)
    for i in (0, FRAMES - 1):
        for cam in ("ego", "exo1"):
            c = frames[i]["cameras"][cam]
            assert (c["depth"] > 0).all() and c["depth"].max() < 8.0  # the room's walls bound every ray
            for obj in spec.objects:
                v, u = np.nonzero(c["labels"] == obj.id)
                if len(v) < 10:
                    continue
                d = c["depth"][v, u]
                assert 0.2 < d.min() and d.max() < 2.5
                rays = np.linalg.inv(c["K"]) @ np.stack([u, v, np.ones_like(u)]).astype(float)
                world = c["T_world_cam"][:3, :3] @ (rays * d) + c["T_world_cam"][:3, 3:4]
                dist = np.linalg.norm(world - traj.obj_pos[i, obj.id - 1][:, None], axis=0)
                bound = max(obj.radius(), obj.half_height()) * 1.8 + 0.01
                assert np.percentile(dist, 95) < bound, (cam, i, obj.id)


def test_depth_of_a_sphere_back_projects_onto_its_surface():
    """Sub-millimetre check of K (principal point at (W-1)/2, (H-1)/2), depth and poses: a
    half-pixel error in K alone would put the points ~2 mm off the sphere."""
    from scipy.ndimage import binary_erosion

    seed = next(
        s for s in range(100) if any(o.shape == "sphere" for o in sample_scene(s, OBJECTS, 1, 1).objects)
    )
    spec = sample_scene(seed, OBJECTS, 1, 1)
    centres = plan_trajectories(spec).obj_pos[0]
    frame = next(iter(render_episode(seed=seed, num_frames=1, num_objects=OBJECTS, size=SIZE)))
    checked = 0
    for c in frame["cameras"].values():
        for obj in (o for o in spec.objects if o.shape == "sphere"):
            v, u = np.nonzero(binary_erosion(c["labels"] == obj.id))  # no edge pixels
            if len(v) < 15:
                continue
            rays = np.linalg.inv(c["K"]) @ np.stack([u, v, np.ones_like(u)]).astype(float)
            world = c["T_world_cam"][:3, :3] @ (rays * c["depth"][v, u]) + c["T_world_cam"][:3, 3:4]
            residual = np.abs(np.linalg.norm(world - centres[obj.id - 1][:, None], axis=0) - obj.size[0])
            assert residual.mean() < 0.001
            checked += 1
    assert checked >= 1


def test_same_seed_same_bytes_other_seed_other_scene():
    a = list(render_episode(seed=5, num_frames=2, size=SIZE))
    b = list(render_episode(seed=5, num_frames=2, size=SIZE))
    c = list(render_episode(seed=6, num_frames=2, size=SIZE))
    for fa, fb in zip(a, b, strict=True):
        for cam in ("ego", "exo1"):
            for key in ("rgb", "labels", "depth", "T_world_cam"):
                assert np.array_equal(fa["cameras"][cam][key], fb["cameras"][cam][key]), (cam, key)
    assert not np.array_equal(a[0]["cameras"]["ego"]["rgb"], c[0]["cameras"]["ego"]["rgb"])
    assert not np.array_equal(a[0]["cameras"]["exo1"]["labels"], c[0]["cameras"]["exo1"]["labels"])


def test_lookalikes_copy_an_object_and_sometimes_move():
    twin_moved = 0
    for seed in range(10):
        spec = sample_scene(seed, 8, 1, 40)
        looks = [o for o in spec.objects if o.lookalike_of is not None]
        assert len(looks) == 2
        for look in looks:
            src = spec.object(look.lookalike_of)
            assert src.lookalike_of is None
            assert (look.shape, look.size, look.material) == (src.shape, src.size, src.material)
            assert np.hypot(*np.subtract(look.xy, src.xy)) >= look.radius() + src.radius()
        twins = {o.id for o in looks} | {o.lookalike_of for o in looks}
        twin_moved += any(e.object_id in twins for e in spec.events)
    assert 0 < twin_moved
    assert {o.lookalike_of for o in sample_scene(0, 2, 1, 10).objects} == {None}


def test_written_episode_layout_meta_and_bag(tmp_path, frames):
    from rosbags.highlevel import AnyReader

    info = generate_episode(tmp_path, seed=SEED, num_frames=FRAMES, num_objects=OBJECTS, size=SIZE, name="ep")
    meta = json.loads(info.meta_path.read_text())
    assert info.cameras == ["ego", "exo1"] and meta["seed"] == SEED
    ids = {o["id"] for o in meta["objects"]}
    assert ids == set(range(1, OBJECTS + 1))
    assert any(o["lookalike_of"] in ids for o in meta["objects"])
    res = f"{SIZE[1]}p"
    for cam in info.cameras:
        root = tmp_path / cam
        assert (root / "ImageSets" / "2016" / "val.txt").read_text().split() == ["ep"]
        assert len(list((root / "JPEGImages" / res / "ep").glob("*.jpg"))) == FRAMES
        assert meta["cameras"][cam]["frame_id"] == f"{cam}_optical_frame"
        assert np.allclose(meta["cameras"][cam]["K"], frames[0]["cameras"][cam]["K"])
        assert len(meta["cameras"][cam]["T_world_cam"]) == FRAMES
        for i in (0, FRAMES - 1):
            mem = frames[i]["cameras"][cam]
            with Image.open(root / "Annotations" / res / "ep" / f"{i:05d}.png") as ann:
                assert ann.mode == "P"
                labels = np.array(ann)
            assert set(np.unique(labels).tolist()) - {0} <= ids
            assert np.array_equal(labels, mem["labels"])
            jpg = np.array(Image.open(root / "JPEGImages" / res / "ep" / f"{i:05d}.jpg"))
            assert np.abs(jpg.astype(int) - mem["rgb"]).mean() < 4
            depth = np.array(Image.open(root / "Depth" / "ep" / f"{i:05d}.png"))
            assert depth.dtype == np.uint16
            assert np.abs(depth.astype(float) - mem["depth"] * 1000).max() <= 0.5 + 1e-3
            assert np.allclose(meta["cameras"][cam]["T_world_cam"][i], mem["T_world_cam"], atol=1e-8)
    # A second episode in the same root is appended to the split files.
    generate_episode(tmp_path, seed=SEED + 1, num_frames=1, size=SIZE, name="ep2", bag=False)
    assert (tmp_path / "exo1" / "ImageSets" / "2016" / "val.txt").read_text().split() == ["ep", "ep2"]

    kinds = ("image_raw", "camera_info", "pose", "depth_registered/image_rect")
    topics = {f"/{c}/{k}" for c in ("ego", "exo1") for k in kinds}
    stamps: dict[str, list[int]] = {t: [] for t in topics}
    with AnyReader([info.bag_path]) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == {t: FRAMES for t in topics}
        for conn, _, raw in reader.messages(connections=reader.connections):
            msg = reader.deserialize(raw, conn.msgtype)
            cam = conn.topic.split("/")[1]
            pose = conn.topic.endswith("/pose")
            assert msg.header.frame_id == ("world" if pose else f"{cam}_optical_frame")
            stamps[conn.topic].append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
            i = len(stamps[conn.topic]) - 1
            mem = frames[i]["cameras"][cam]
            if conn.topic.endswith("image_raw"):
                assert (msg.encoding, msg.width, msg.height) == ("rgb8", SIZE[0], SIZE[1])
                img = np.frombuffer(msg.data, np.uint8).reshape(SIZE[1], SIZE[0], 3)
                assert np.array_equal(img, mem["rgb"])
            elif conn.topic.endswith("image_rect"):  # the depth, as the Depth PNGs
                assert (msg.encoding, msg.width, msg.height) == ("16UC1", SIZE[0], SIZE[1])
                mm = np.frombuffer(msg.data, "<u2").reshape(SIZE[1], SIZE[0])
                assert np.abs(mm.astype(float) - mem["depth"] * 1000).max() <= 0.5 + 1e-3
            elif pose:
                assert np.allclose(decode_pose(msg).T, mem["T_world_cam"], atol=1e-6)
            else:
                assert np.allclose(np.array(msg.k).reshape(3, 3), frames[0]["cameras"][cam]["K"])
    for t in topics:
        assert stamps[t] == meta["stamps_ns"]


def test_cli_writes_episodes_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = corr_main(
        [
            "generate",
            "sim",
            "--out",
            str(out),
            "--seed",
            "3",
            "--episodes",
            "2",
            "--frames",
            "2",
            "--objects",
            "3",
            "--exo",
            "2",
            "--size",
            "64x48",
            "--no-bag",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "episode_001" in printed and "frames/s" in printed
    seeds = [json.loads((out / "meta" / f"episode_{i:03d}.json").read_text())["seed"] for i in range(2)]
    assert seeds == [3, 4]
    for cam in ("ego", "exo1", "exo2"):
        assert len(list((out / cam / "Annotations" / "48p").glob("*/*.png"))) == 4
    assert not (out / "bags").exists()
    assert corr_main(["generate", "sim", "--out", str(out), "--size", "64by48"]) == 2
    assert "--size" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="objects"):
        render_episode(num_objects=0)


@pytest.mark.parametrize("seed", range(12))
def test_gripper_rests_in_the_lower_corner_of_the_first_ego_view_on_the_shoulder_side(seed):
    """Before the first event the hand rests low on the shoulder's side of the ego view (like a
    hand at rest), not over the table, so the first ego frame -- the one tracking starts from --
    shows the objects."""
    import math

    import mujoco

    spec = sample_scene(seed, OBJECTS, 1, 30)
    traj = plan_trajectories(spec)
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, traj.ego_quat[0])
    right, up, back = rot.reshape(3, 3).T
    v = traj.gripper_pos[0] - traj.ego_pos[0]
    depth = -v @ back
    tan = math.tan(math.radians(spec.ego.fovy) / 2)
    x, y = (v @ right) / (depth * tan), (v @ up) / (depth * tan)  # in units of tan(fovy / 2)
    assert depth > 0.2
    assert y < -0.6, "the resting hand is not in the lower part of the view"
    assert x * np.sign(spec.shoulder[0]) > 0.5, "the resting hand is not on the shoulder's side"


def test_first_ego_frame_shows_the_objects_the_exo_camera_sees(frames):
    ego, exo = (frames[0]["cameras"][c]["labels"] for c in ("ego", "exo1"))

    def ids(lab: np.ndarray) -> set[int]:
        values, counts = np.unique(lab, return_counts=True)
        return {int(v) for v, n in zip(values, counts, strict=True) if v and n >= 8}

    assert ids(exo) and ids(exo) <= ids(ego)


TINY = {"num_objects": 3, "size": (64, 48)}


def _episode_files(root, name: str = "ep") -> dict[str, list[str]]:
    """Every file of episode ``name`` under ``root``, by camera folder (bags and meta apart)."""
    files: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and name in rel.parts[:-1]:
            files.setdefault(rel.parts[0], []).append(str(rel))
    return files


def test_other_settings_over_an_episode_are_refused_before_anything_is_written(tmp_path):
    """`corr generate sim --no-bag` over an episode of another seed used to replace its metadata
    and keep its extra frames: one episode holding frames of two seeds."""
    from corr_core.errors import DataError

    generate_episode(tmp_path, seed=1, num_frames=3, name="ep", bag=False, **TINY)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(DataError) as exc:
        generate_episode(tmp_path, seed=2, num_frames=2, name="ep", bag=False, **TINY)
    msg = str(exc.value)
    assert str(tmp_path) in msg and "'ep'" in msg
    assert "seed 1 -> 2" in msg and "num_frames 3 -> 2" in msg and "--overwrite" in msg
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    # the same settings again rewrite the same episode (deterministic), as before
    generate_episode(tmp_path, seed=1, num_frames=3, name="ep", bag=False, **TINY)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}.keys() == before.keys()
    # other episodes in the same root are not in the way
    generate_episode(tmp_path, seed=2, num_frames=2, name="ep2", bag=False, **TINY)


def test_overwrite_replaces_the_episode_whole(tmp_path):
    from corr_core.errors import DataError

    generate_episode(tmp_path, seed=1, num_frames=3, num_exo=2, name="ep", **TINY)
    generate_episode(tmp_path, seed=7, num_frames=1, name="other", bag=False, **TINY)
    assert (tmp_path / "bags" / "ep").is_dir()
    # fewer frames, another size, one camera less, no bag: nothing of the old episode survives
    info = generate_episode(
        tmp_path, seed=2, num_frames=2, num_objects=3, size=(80, 64), name="ep", bag=False, overwrite=True
    )
    files = _episode_files(tmp_path)
    assert sorted(files) == ["ego", "exo1"]
    for cam in ("ego", "exo1"):
        names = sorted(f.split("/", 1)[1] for f in files[cam])
        assert names == sorted(
            f"{kind}/ep/{i:05d}.{ext}"
            for i in range(2)
            for kind, ext in (("JPEGImages/64p", "jpg"), ("Annotations/64p", "png"), ("Depth", "png"))
        )
        assert (tmp_path / cam / "ImageSets" / "2016" / "val.txt").read_text().split() == ["ep", "other"]
    assert "ep" not in (tmp_path / "exo2" / "ImageSets" / "2016" / "val.txt").read_text().split()
    assert not (tmp_path / "bags" / "ep").exists()
    assert json.loads(info.meta_path.read_text())["seed"] == 2
    fresh = list(render_episode(seed=2, num_frames=2, num_objects=3, size=(80, 64)))
    for i, frame in enumerate(fresh):
        with Image.open(tmp_path / "exo1" / "Annotations" / "64p" / "ep" / f"{i:05d}.png") as ann:
            assert np.array_equal(np.array(ann), frame["cameras"]["exo1"]["labels"])
    assert len(_episode_files(tmp_path, "other")["ego"]) == 3  # the other episode is untouched
    # a bag asked for again is written anew
    info = generate_episode(tmp_path, seed=3, num_frames=1, name="ep", overwrite=True, **TINY)
    assert info.bag_path is not None and (info.bag_path / "metadata.yaml").is_file()
    with pytest.raises(DataError, match="exists already"):  # bags are never overwritten without asking
        generate_episode(tmp_path, seed=3, num_frames=1, name="ep", **TINY)


def test_unfinished_or_unknown_episode_folders(tmp_path):
    from corr_core.errors import DataError

    generate_episode(tmp_path, seed=1, num_frames=2, name="ep", bag=False, **TINY)
    # frames without metadata (not written by this generator, or by an older version): refused
    (tmp_path / "meta" / "ep.json").unlink()
    with pytest.raises(DataError, match="no metadata"):
        generate_episode(tmp_path, seed=1, num_frames=2, name="ep", bag=False, **TINY)
    generate_episode(tmp_path, seed=1, num_frames=1, name="ep", bag=False, overwrite=True, **TINY)
    assert len(_episode_files(tmp_path)["ego"]) == 3
    with pytest.raises(ConfigError, match="episode name"):
        generate_episode(tmp_path, name="../x", bag=False, **TINY)


def test_interrupted_episode_is_replaced_on_the_next_run(tmp_path, monkeypatch):
    from corr_core.data.sim import generate as gen

    calls = {"n": 0}
    real = gen._write_frame

    def dies_on_the_third_frame(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(gen, "_write_frame", dies_on_the_third_frame)
    with pytest.raises(KeyboardInterrupt):
        generate_episode(tmp_path, seed=1, num_frames=3, name="ep", **TINY)
    monkeypatch.undo()
    assert not (tmp_path / "meta" / "ep.json").exists()
    # an unfinished episode (even with its half-written bag) is replaced whole, whatever the settings
    info = generate_episode(tmp_path, seed=5, num_frames=2, name="ep", **TINY)
    assert len(_episode_files(tmp_path)["exo1"]) == 6
    assert json.loads(info.meta_path.read_text())["seed"] == 5
    assert [p.name for p in (tmp_path / "meta").iterdir()] == ["ep.json"]


def test_cli_refuses_other_settings_over_episodes_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "sim"
    base = ["generate", "sim", "--out", str(out), "--frames", "2", "--objects", "3", "--size", "64x48"]
    base.append("--no-bag")
    assert corr_main([*base, "--episodes", "2"]) == 0
    capsys.readouterr()
    assert corr_main([*base, "--episodes", "2", "--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert "episode_000" in err and "seed 0 -> 5" in err and "--overwrite" in err
    seeds = [json.loads((out / "meta" / f"episode_{i:03d}.json").read_text())["seed"] for i in range(2)]
    assert seeds == [0, 1]  # refused before any episode was rendered
    assert corr_main([*base, "--episodes", "2", "--seed", "5", "--overwrite"]) == 0
    seeds = [json.loads((out / "meta" / f"episode_{i:03d}.json").read_text())["seed"] for i in range(2)]
    assert seeds == [5, 6]


def test_scene_module_still_answers_its_old_names():
    from corr_core.data.sim import mjcf, sampling, scene

    assert scene.sample_scene is sampling.sample_scene and scene.build_mjcf is mjcf.build_mjcf
    assert scene.default_num_lookalikes(8) == 2
    with pytest.raises(AttributeError):
        scene.no_such_name  # noqa: B018


def test_reuse_takes_a_complete_episode_as_it_is_and_renders_anything_else(tmp_path, monkeypatch):
    from corr_core.data.sim import generate as gen

    kw = dict(seed=3, num_frames=2, num_objects=3, size=(64, 48), bag=False)
    gen.generate_episode(tmp_path, name="ep", **kw)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*.jpg"))

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered although the episode could be reused")

    monkeypatch.setattr(gen, "SceneRenderer", no_rendering)
    info = gen.generate_episode(tmp_path, name="ep", reuse=True, **kw)
    assert info.cameras == ["ego", "exo1"] and info.meta_path.is_file()
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*.jpg")) == before
    with pytest.raises(AssertionError, match="rendered"):  # other settings are not reused
        gen.generate_episode(tmp_path, name="ep", reuse=True, overwrite=True, **{**kw, "seed": 4})
    with pytest.raises(AssertionError, match="rendered"):  # nor an unfinished episode (marker left)
        gen.generate_episode(tmp_path, name="ep", reuse=True, **kw)


def test_an_object_hidden_from_one_camera_is_missing_there_only(tmp_path):
    from corr_core.data.labels import read_label_png
    from corr_core.data.sim import generate as gen
    from corr_core.errors import ConfigError

    info = gen.generate_episode(tmp_path, seed=11, num_frames=3, num_objects=5, size=(96, 72), bag=False,
                                name="ep", hidden_per_camera=1)
    meta = json.loads(info.meta_path.read_text())
    hidden = meta["hidden"]
    assert meta["hidden_per_camera"] == 1 and sorted(hidden) == ["ego", "exo1"]
    assert len({i for ids in hidden.values() for i in ids}) == 2  # each camera hides another object
    seen = {cam: set() for cam in hidden}
    for cam in hidden:
        for f in sorted((tmp_path / cam / "Annotations" / "72p" / "ep").glob("*.png")):
            seen[cam] |= set(np.unique(read_label_png(f)).tolist())
    for cam, ids in hidden.items():
        assert not set(ids) & seen[cam]  # never in the camera that hides it
    assert set(hidden["exo1"]) & seen["ego"]  # the object exo1 does not see is seen by ego here
    with pytest.raises(Exception, match="hidden_per_camera 1 -> 0"):  # a settings change is refused
        gen.generate_episode(tmp_path, seed=11, num_frames=3, num_objects=5, size=(96, 72), bag=False, name="ep")
    with pytest.raises(ConfigError, match="hidden objects per camera"):
        gen.generate_episode(tmp_path, seed=1, num_objects=3, hidden_per_camera=2, bag=False, name="other")
