"""corr_player -> corr_node -> corr_recorder over real ROS 2 topics, and the recorder's clean stop.

The episode is a tiny DAVIS-layout folder per camera written here (JPEG frames, palette PNG
first-frame masks); the player runs in lockstep with the node's labels, and the recorded mcap bag
is read back with rosbags.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

pytestmark = pytest.mark.ros

REPO_ROOT = Path(__file__).resolve().parent.parent
W, H = 64, 48
CAMS = ("ego", "exo1")
FRAMES = 4


def write_episode(root: Path) -> dict[str, np.ndarray]:
    """Writes <root>/<cam>/JPEGImages/64p/ep0/%05d.jpg + Annotations/64p/ep0/00000.png; returns the masks."""
    from corr_core.data.labels import write_label_png

    masks = {}
    for k, cam in enumerate(CAMS):
        rng = np.random.default_rng(k)
        background = rng.integers(80, 150, (H, W, 3)).astype(np.uint8)
        labels = np.zeros((H, W), np.uint8)
        obj_id = 2 + k
        for i in range(FRAMES):
            image = background.copy()
            x = 10 + 2 * i  # the object moves slowly to the right
            image[12:36, x : x + 24] = (230, 60 + 60 * k, 40)
            folder = root / cam / "JPEGImages" / "64p" / "ep0"
            folder.mkdir(parents=True, exist_ok=True)
            PILImage.fromarray(image).save(folder / f"{i:05d}.jpg", quality=95)
            if i == 0:
                labels[12:36, x : x + 24] = obj_id
        write_label_png(root / cam / "Annotations" / "64p" / "ep0" / "00000.png", labels)
        masks[cam] = labels
    return masks


def test_player_node_recorder_pipeline(tmp_path, launch_node, ros_probe):
    root = tmp_path / "episode"
    masks = write_episode(root)
    bag = tmp_path / "labels_bag"
    ready = tmp_path / "recorder.ready"
    recorder = launch_node(
        "corr_ros.nodes.recorder",
        "-p",
        f"output:={bag}",
        "-p",
        "topics:=['ego/labels:sensor_msgs/msg/Image', 'exo1/labels:sensor_msgs/msg/Image']",
        "-p",
        f"max_messages:={FRAMES}",
        "-p",
        f"ready_file:={ready}",
    )
    node = launch_node(
        "corr_ros.nodes.corr_node",
        "--params-file",
        str(REPO_ROOT / "config" / "corr_node.yaml"),
        "-p",
        "random_init:=true",
        "-p",
        "camera_timeout:=0.0",
    )
    # the player starts once the recorder's readers matched the node's labels writers (the
    # graph shows a subscription earlier than it is matched), so no labels message can be missed
    ros_probe.wait_for(
        lambda: recorder.check_alive() and node.check_alive() and ready.exists(),
        60.0,
        "the recorder to match the node's labels publishers",
    )
    assert sorted(ready.read_text().split()) == ["/ego/labels", "/exo1/labels"]
    player = launch_node(
        "corr_ros.nodes.player",
        "--params-file",
        str(REPO_ROOT / "config" / "player.yaml"),
        "-p",
        f"root:={root}",
        "-p",
        "rate:=20.0",
        "-p",
        "wait_for_labels:=true",
        "-p",
        "wait_for_subscribers:=60.0",
    )
    assert player.wait(timeout=120) == 0, player.log()
    assert recorder.wait(timeout=30) == 0, recorder.log()
    assert node.alive()
    assert f"done: {FRAMES} frames published, 0 waited out without labels" in player.log()

    from rosbags.highlevel import AnyReader

    from corr_core.data.bag import decode_image

    with AnyReader([bag]) as reader:
        per_topic: dict[str, list] = {}
        for conn, _t, raw in reader.messages():
            per_topic.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    assert sorted(per_topic) == ["/ego/labels", "/exo1/labels"]
    for k, cam in enumerate(CAMS):
        msgs = per_topic[f"/{cam}/labels"]
        assert len(msgs) == FRAMES
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in msgs]
        assert len(set(stamps)) == FRAMES and stamps == sorted(stamps)
        assert all(m.header.frame_id == cam for m in msgs)
        first = decode_image(msgs[0])
        assert msgs[0].encoding == "mono16" and first.shape == (H, W)
        obj = 2 + k
        inter = np.logical_and(first == obj, masks[cam] == obj).sum()
        assert inter / np.logical_or(first == obj, masks[cam] == obj).sum() > 0.7
    # the same stamp for both cameras of a frame (synthetic stamps of the DAVIS source)
    assert [m.header.stamp for m in per_topic["/ego/labels"]] == [
        m.header.stamp for m in per_topic["/exo1/labels"]
    ]


def test_recorder_finalises_bag_on_sigint(tmp_path, launch_node, ros_probe):
    from rclpy.duration import Duration
    from std_msgs.msg import String

    from corr_ros.qos import reliable_qos

    bag = tmp_path / "summary_bag"
    recorder = launch_node(
        "corr_ros.nodes.recorder",
        "-p",
        f"output:={bag}",
        "-p",
        "topics:=['test_corr/summary:std_msgs/msg/String']",
    )
    pub = ros_probe.node.create_publisher(String, "test_corr/summary", reliable_qos(100))
    ros_probe.wait_for(
        lambda: recorder.check_alive() and pub.get_subscription_count() > 0, 60.0, "the recorder to subscribe"
    )
    sent = [f'{{"n": {i}}}' for i in range(7)]
    for text in sent:
        pub.publish(String(data=text))
    assert pub.wait_for_all_acked(Duration(seconds=10.0))
    recorder.stop(signal.SIGINT)
    assert recorder.returncode == 0, recorder.log()

    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        got = [reader.deserialize(raw, conn.msgtype).data for conn, _t, raw in reader.messages()]
    assert got == sent
    assert (bag / "metadata.yaml").is_file()


def test_player_plays_a_bag_with_its_stamps(tmp_path, launch_node, ros_probe):
    """... and the left camera's pose and depth (an RGB-D head camera), stamped like its images."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image

    from corr_core.data.bag import BagWriter
    from corr_core.data.labels import write_label_png
    from corr_core.geometry import pose_matrix
    from corr_ros.conversions import image_to_depth, image_to_labels, image_to_rgb, stamp_to_ns
    from corr_ros.qos import reliable_qos

    bag = tmp_path / "cams_bag"
    cams = ("left", "right")
    rng = np.random.default_rng(5)
    frames = {c: [rng.integers(0, 256, (H, W, 3)).astype(np.uint8) for _ in range(3)] for c in cams}
    stamps = [10**18 + k * 50_000_000 for k in range(3)]
    K = np.array([[40.0, 0, 32], [0, 40.0, 24], [0, 0, 1]])
    poses = [np.eye(4) for _ in stamps]
    for k, T in enumerate(poses):
        T[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # 90 degrees about x
        T[:3, 3] = [0.1 * k, 0.0, 0.4]
    with BagWriter(bag) as writer:
        for k, stamp in enumerate(stamps):
            writer.add_pose("/left/pose", stamp, "base", poses[k])
            writer.add_image("/left/depth_registered/image_rect", stamp, "left_frame",
                             np.full((H, W), 700 + k, np.uint16), "16UC1")
            for j, cam in enumerate(cams):
                writer.add_camera_info(f"/{cam}/camera_info", stamp + j * 1000, f"{cam}_frame", W, H, K)
                writer.add_image(
                    f"/{cam}/image_raw",
                    stamp + j * 1000,
                    f"{cam}_frame",
                    frames[cam][k][..., ::-1].copy(),
                    "bgr8",
                )
    mask_paths = []
    for cam in cams:
        labels = np.zeros((H, W), np.uint8)
        labels[5:20, 5:30] = 4
        write_label_png(tmp_path / f"{cam}.png", labels)
        mask_paths.append(str(tmp_path / f"{cam}.png"))
    images = {c: ros_probe.collect(Image, f"{c}/image_raw", reliable_qos(50)) for c in cams}
    infos = {c: ros_probe.collect(CameraInfo, f"{c}/camera_info", reliable_qos(50)) for c in cams}
    masks = {c: ros_probe.collect(Image, f"{c}/masks_in", reliable_qos(10)) for c in cams}
    pose_msgs = {c: ros_probe.collect(PoseStamped, f"{c}/pose", reliable_qos(50)) for c in cams}
    depths = {c: ros_probe.collect(Image, f"{c}/depth_registered/image_rect", reliable_qos(50)) for c in cams}
    player = launch_node(
        "corr_ros.nodes.player",
        "-p",
        f"bag:={bag}",
        "-p",
        f"masks:={mask_paths}",
        "-p",
        "rate:=50.0",
        "-p",
        "wait_for_subscribers:=60.0",
        "-p",
        "wait_for_topics:=['left/pose', '/left/depth_registered/image_rect']",
    )
    def received() -> bool:
        done = all(len(images[c]) == 3 for c in cams) and len(pose_msgs["left"]) == len(depths["left"]) == 3
        if not done and player.returncode not in (None, 0):
            player.check_alive()  # it failed: say why (a clean exit may leave messages still in flight)
        return done

    ros_probe.wait_for(received, 60.0, "three frames per camera, and the left camera's three poses and depth images")
    assert player.wait(timeout=30) == 0, player.log()
    for cam in cams:
        got = [stamp_to_ns(m.header) for m in images[cam]]
        assert got == [s + cams.index(cam) * 1000 for s in stamps]  # the bag's header stamps
        assert all(m.header.frame_id == f"{cam}_frame" and m.encoding == "rgb8" for m in images[cam])
        for k, msg in enumerate(images[cam]):
            np.testing.assert_array_equal(image_to_rgb(msg), frames[cam][k])
        np.testing.assert_array_equal(np.asarray(infos[cam][0].k).reshape(3, 3), K)
        assert len(masks[cam]) == 1 and stamp_to_ns(masks[cam][0].header) == got[0]
        assert set(np.unique(image_to_labels(masks[cam][0]))) == {0, 4}
    # the bag's pose and depth of the left camera, with its images' stamps; none for the right one
    assert [stamp_to_ns(m.header) for m in pose_msgs["left"]] == stamps
    assert [stamp_to_ns(m.header) for m in depths["left"]] == stamps
    assert pose_msgs["right"] == [] and depths["right"] == []
    for k, (pm, dm) in enumerate(zip(pose_msgs["left"], depths["left"], strict=True)):
        p, q = pm.pose.position, pm.pose.orientation
        assert pm.header.frame_id == "base"
        assert np.allclose(pose_matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)), poses[k])
        assert dm.encoding == "16UC1" and np.allclose(image_to_depth(dm), (700 + k) / 1000)
    # a topic to wait for that the player does not publish is named, with those it does
    bad = launch_node("corr_ros.nodes.player", "-p", f"bag:={bag}", "-p", "wait_for_topics:=['left/odom']",
                      name="player_bad_wait")
    assert bad.wait(timeout=60) not in (0, None)
    assert "parameter 'wait_for_topics': ['left/odom'] are not topics this player publishes" in bad.log()
    assert "'left/pose'" in bad.log()
