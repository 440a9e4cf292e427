"""An RGB-D anchor camera in cross-view mode: depth images decoded (REP 118 encodings), kept by
stamp beside the synchronised sets, and refused with the problem named."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from corr_core.data.image_codec import decode_depth, encode_pixels
from corr_core.errors import ConfigError, DataError, UnknownEncodingError
from corr_core.sync import NearestStamp


def depth_msg(pixels: np.ndarray, encoding: str, bigendian: bool = False) -> SimpleNamespace:
    h, w = pixels.shape
    data = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")).tobytes()
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian),
                           step=len(data) // h, data=data)


def test_millimetre_and_metre_depth_images_decode_to_metres_with_unknown_as_zero():
    mm = np.array([[0, 500], [1250, 65535]], np.uint16)
    for enc in ("16UC1", "mono16"):
        for big in (False, True):
            out = decode_depth(depth_msg(mm, enc, big))
            assert out.dtype == np.float32
            np.testing.assert_allclose(out, [[0.0, 0.5], [1.25, 65.535]], rtol=1e-6)
    metres = np.array([[np.nan, 0.7], [np.inf, -1.0]], np.float32)
    np.testing.assert_allclose(decode_depth(depth_msg(metres, "32FC1")), [[0.0, 0.7], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(decode_depth(depth_msg(metres, "32FC1", True)), [[0.0, 0.7], [0.0, 0.0]], rtol=1e-6)
    # the bag writer's 16UC1 layout reads back the same
    fields = encode_pixels(mm, "16UC1")
    np.testing.assert_allclose(decode_depth(fields), decode_depth(depth_msg(mm, "16UC1")))


def test_a_colour_image_or_a_short_buffer_on_the_depth_topic_is_named():
    rgb = SimpleNamespace(height=2, width=2, encoding="rgb8", is_bigendian=0, step=6, data=bytes(12))
    with pytest.raises(UnknownEncodingError, match=r"depth images on topic /ego/depth.*got encoding 'rgb8'"):
        decode_depth(rgb, "/ego/depth")
    short = depth_msg(np.zeros((4, 4), np.float32), "32FC1")
    short.data = short.data[:10]
    with pytest.raises(DataError, match="data holds 10 bytes"):
        decode_depth(short)


def test_the_nearest_depth_within_the_slop_is_found_and_old_ones_are_forgotten():
    buf: NearestStamp[str] = NearestStamp(size=3)
    assert buf.nearest(100, 10) is None
    for stamp in (100, 200, 300, 400):
        buf.put(stamp, f"d{stamp}")
    assert buf.nearest(205, 10) == "d200" and buf.nearest(390, 10) == "d400"
    assert buf.nearest(250, 10) is None  # between two, out of the slop
    assert buf.nearest(100, 10) is None  # the oldest went when a fourth came
    buf.clear()
    assert buf.nearest(400, 10) is None
    with pytest.raises(ConfigError, match="size must be >= 1"):
        NearestStamp(0)


def test_the_cross_view_link_serves_the_anchor_depth_of_the_frame_stamp():
    from corr_core.crossview.multicam import CrossViewLink

    link = CrossViewLink(matcher=None, anchor="ego", cameras=["ego", "exo1"], slop_s=0.01)
    a, b = np.full((2, 2), 1.0, np.float32), np.full((2, 2), 2.0, np.float32)
    link.put_depth(1_000_000_000, a)
    link.put_depth(1_100_000_000, b)
    assert link.depth_at(1_000_000_000) is a and link.depth_at(1_105_000_000) is b
    assert link.depth_at(1_050_000_000) is None  # no depth for that frame: it is matched without


def test_depth_without_a_rig_is_a_configuration_error():
    from corr_ros.tracking.crossview import build_link

    params = {"crossview_checkpoint": "corr_core/assets/checkpoints/pcc_resnet18_l2_prior.safetensors",
              "anchor_camera": "ego", "crossview_proposer": "none", "crossview_rig": "", "crossview_depth": True,
              "crossview_rematch_every": 0, "crossview_retry_every": 10, "slop": 0.05, "crossview_geometry_wait": 0.1}
    with pytest.raises(ConfigError, match="'crossview_depth' needs 'crossview_rig'"):
        build_link(params.__getitem__, ["ego", "exo1"], "cpu", SimpleNamespace(info=print))


def test_a_pose_message_becomes_a_rigid_transform_and_a_bad_one_is_named():
    from scipy.spatial.transform import Rotation

    from corr_core.geometry import pose_matrix, pose_quaternion

    assert np.allclose(pose_matrix((0, 0, 0), (0, 0, 0, 1)), np.eye(4))
    rot = Rotation.from_euler("xyz", [30, -50, 120], degrees=True)
    T = pose_matrix((1.0, -2.0, 0.5), 3.0 * rot.as_quat())  # not unit length: normalised
    assert np.allclose(T[:3, :3], rot.as_matrix()) and np.allclose(T[:3, 3], [1.0, -2.0, 0.5])
    with pytest.raises(DataError, match=r"ego/pose: the orientation quaternion .* has no length"):
        pose_matrix((0, 0, 0), (0, 0, 0, 0), "ego/pose")  # a PoseStamped whose orientation was never set
    with pytest.raises(DataError, match="needs a finite position"):
        pose_matrix((0, float("nan"), 0), (0, 0, 0, 1))
    position, quaternion = pose_quaternion(T)  # and back
    assert np.allclose(pose_matrix(position, quaternion), T)
    with pytest.raises(DataError, match="not a rotation"):
        pose_quaternion(np.diag([1.0, 1.0, -1.0, 1.0]))


def test_a_moving_camera_takes_its_pose_from_each_set(tmp_path):
    import yaml

    from corr_core.crossview.multicam import CrossViewLink
    from corr_core.crossview.rig import CameraRig

    K = [[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]]
    exo = np.eye(4)
    exo[:3, 3] = [0.0, 0.5, 0.0]
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({"frame": "table", "cameras": {
        "ego": {"moving": True, "K": K, "size": [120, 160]}, "exo1": {"T_frame_cam": exo.tolist()}}}))
    rig = CameraRig.from_yaml(path)
    assert rig.frame == "table" and rig.moving == {"ego"}
    rig.check_cameras(["ego", "exo1"])
    rig.set_intrinsics("exo1", np.asarray(K).reshape(-1), (120, 160))
    assert rig.pair("ego", "exo1") is None  # no pose for the moving camera at this set
    ego = np.eye(4)
    ego[:3, 3] = [0.2, 0.0, 0.0]
    pair = rig.pair("ego", "exo1", poses={"ego": ego})
    assert np.allclose(pair.src.T_world_cam, ego) and np.allclose(pair.tgt.T_world_cam, exo)
    # the node's link keeps each moving camera's poses by stamp and hands over the one of each frame
    link = CrossViewLink(matcher=None, anchor="ego", cameras=["ego", "exo1"], rig=rig, slop_s=0.01)
    link.put_pose("ego", 1_000_000_000, ego)
    link.put_pose("exo1", 1_000_000_000, ego)  # a static camera: ignored
    assert set(link.poses_at({"ego": 1_004_000_000, "exo1": 1_004_000_000})) == {"ego"}
    assert link.poses_at({"ego": 1_100_000_000, "exo1": 1_100_000_000}) == {}


@pytest.mark.parametrize("cameras, error", [
    ({"ego": {"moving": True, "T_frame_cam": np.eye(4).tolist()}}, "T_frame_cam .*or moving: true, not both"),
    ({"ego": {"moving": "yes"}}, "has no T_frame_cam .* and is not moving: true"),
])
def test_a_rig_camera_both_or_neither_static_and_moving_is_named(tmp_path, cameras, error):
    import yaml

    from corr_core.crossview.rig import CameraRig

    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({"cameras": cameras}))
    with pytest.raises(ConfigError, match=error):
        CameraRig.from_yaml(path)


def test_the_link_refuses_a_depth_of_another_size_and_a_pose_in_another_frame():
    from corr_core.crossview.multicam import CrossViewLink
    from corr_core.crossview.rig import CameraRig
    from corr_core.errors import ShapeMismatchError

    rig = CameraRig({"exo1": np.eye(4)}, moving=["ego"], frame="table", source="rig.yaml")
    link = CrossViewLink(matcher=None, anchor="ego", cameras=["ego", "exo1"], rig=rig)
    with pytest.raises(ShapeMismatchError, match="depth image 160x120 does not match the camera's 320x240 images"):
        link.put_depth(1, np.zeros((120, 160), np.float32), (240, 320))
    with pytest.raises(DataError, match=r"pose in frame 'map', the rig's frame is 'table' \(rig.yaml\)"):
        link.put_pose("ego", 1, np.eye(4), "map")
    link.put_pose("ego", 1, np.eye(4), "table")
    assert set(link.poses_at({"ego": 1, "exo1": 1})) == {"ego"}


def test_a_match_says_what_geometry_it_went_without():
    from corr_core.crossview.base import MatchResult
    from corr_core.crossview.multicam import CrossViewLink
    from corr_core.crossview.rig import CameraRig

    class Nothing:
        def match(self, src_rgb, src_labels, tgt_rgb, geometry=None):
            return MatchResult(np.zeros(tgt_rgb.shape[:2], np.uint16))

    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    rig = CameraRig({"exo1": np.eye(4)}, {"exo1": (K, (120, 160))}, moving=["ego"])
    link = CrossViewLink(Nothing(), "ego", ["ego", "exo1"], rig=rig, expect_depth=True)
    img, labels = np.zeros((120, 160, 3), np.uint8), np.zeros((120, 160), np.uint16)
    link.match("exo1", img, labels, img)
    assert link.state["exo1"].lacking == ("ego's intrinsics (ego/camera_info), ego's pose (ego/pose within the slop), "
                                          "ego's depth (within the slop)")
    rig.set_intrinsics("ego", K, (120, 160))
    link.match("exo1", img, labels, img, poses={"ego": np.eye(4)})
    assert link.state["exo1"].geometry and link.state["exo1"].lacking == "ego's depth (within the slop)"
    link.match("exo1", img, labels, img, np.ones((120, 160), np.float32), {"ego": np.eye(4)})
    assert link.state["exo1"].depth and link.state["exo1"].lacking == ""


def test_a_due_match_waits_briefly_for_the_geometry_of_its_set():
    import threading

    from corr_core.crossview.multicam import CrossViewLink
    from corr_core.crossview.rig import CameraRig
    from corr_core.errors import ConfigError
    from corr_core.runtime.processing import _set_geometry

    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    rig = CameraRig({"exo1": np.eye(4)}, {"ego": (K, (120, 160)), "exo1": (K, (120, 160))}, moving=["ego"])
    stamps = {"ego": 1_000, "exo1": 1_000}
    for wait, expect in ((0.0, False), (2.0, True)):
        link = CrossViewLink(matcher=None, anchor="ego", cameras=["ego", "exo1"], rig=rig, geometry_wait_s=wait)
        timer = threading.Timer(0.05, link.put_pose, ("ego", 1_000, np.eye(4)))  # the pose lands after the images
        timer.start()
        depth, poses = _set_geometry(link, "exo1", stamps)
        timer.join()
        assert depth is None and ("ego" in poses) is expect, wait
    with pytest.raises(ConfigError, match="geometry_wait_s"):
        CrossViewLink(matcher=None, anchor="ego", cameras=["ego", "exo1"], geometry_wait_s=-1)
