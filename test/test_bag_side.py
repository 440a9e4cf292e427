"""A camera's pose and depth read beside its images from a rosbag2 bag (what a recording of an
RGB-D head camera holds), matched to each image by stamp; what does not decode is skipped, counted
and named, never the end of the reading."""

from __future__ import annotations

import numpy as np
import pytest

from corr_core.data.bag import POSE_TYPE, BagWriter, encode_pose, read_synced
from corr_core.errors import ConfigError, DataError

T0 = 1_700_000_000 * 10**9
STEP = 100_000_000


def pose(x: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z
    T[:3, 3] = [x, 0.5, 1.0]
    return T


@pytest.fixture
def bag(tmp_path):
    """Four frames of ego and exo1; ego's pose and depth at frames 0, 1 and 3 (frame 2's pose has
    an unset orientation, its depth a colour encoding), exo1 with neither."""
    path = tmp_path / "rec"
    with BagWriter(path) as w:
        for i in range(4):
            t = T0 + i * STEP
            if i != 2:
                w.add_pose("/ego/pose", t, "world", pose(0.1 * i))
                w.add_image("/ego/depth", t, "ego_optical_frame", np.full((6, 8), 500 + i, np.uint16), "16UC1")
            else:
                msg = encode_pose(np.eye(4), t, "world")
                msg.pose.orientation.w = 0.0  # a driver that never set it
                w.add_message("/ego/pose", POSE_TYPE, t, msg)
                w.add_image("/ego/depth", t, "ego_optical_frame", np.zeros((6, 8, 3), np.uint8), "rgb8")
            for cam in ("ego", "exo1"):
                w.add_image(f"/{cam}/image_raw", t, f"{cam}_optical_frame", np.full((6, 8, 3), i, np.uint8))
    return path


def test_poses_and_depth_come_with_the_frames_of_their_stamp(bag, caplog):
    topics = {"ego": "/ego/image_raw", "exo1": "/exo1/image_raw", "ego/pose": "/ego/pose", "ego/depth": "/ego/depth"}
    with read_synced(bag, topics) as reader:
        sets = list(reader)
        stats = reader.stats
    assert len(sets) == 4
    for i, s in enumerate(sets):
        assert set(s.images) == {"ego", "exo1"} and "exo1" not in s.poses and "exo1" not in s.depths
        if i == 2:  # neither decodes: the frame comes without them
            assert s.poses == {} and s.depths == {}
            continue
        assert s.poses["ego"].frame_id == "world" and np.allclose(s.poses["ego"].T, pose(0.1 * i))
        assert s.depths["ego"].dtype == np.float32 and np.allclose(s.depths["ego"], (500 + i) / 1000)
    assert stats.skipped == {"/ego/pose": 1, "/ego/depth": 1}
    assert "has no length" in caplog.text and "got encoding 'rgb8'" in caplog.text


def test_pose_and_depth_topics_are_checked_like_the_others(bag):
    with pytest.raises(ConfigError, match=r"pose given for unknown camera\(s\) \['exo2'\]"):
        read_synced(bag, {"ego": "/ego/image_raw", "exo2/pose": "/ego/pose"})
    with pytest.raises(DataError, match="pose topic /exo1/image_raw .* carries sensor_msgs/msg/Image"):
        read_synced(bag, {"ego": "/ego/image_raw", "ego/pose": "/exo1/image_raw"})
    with pytest.raises(ConfigError, match="more than one camera/role"):
        read_synced(bag, {"ego": "/ego/image_raw", "ego/depth": "/ego/image_raw"})
