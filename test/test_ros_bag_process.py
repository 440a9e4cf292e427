"""``corr bag process`` on a sim bag gives the labels the live corr_node gives on the same frames.

A MuJoCo episode (``corr generate sim``, MCAP bag) is played by corr_player over real ROS 2 topics
into a corr_node process (lockstep, so every frame is processed); the labels it publishes are
collected here. The same bag then goes through ``corr bag process`` with the same masks, network
and settings: the label images must be identical, stamp for stamp.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

REPO_ROOT = Path(__file__).resolve().parent.parent
CAMS = ("ego", "exo1")
FRAMES = 6
SETTINGS = (("topk", 5), ("context", 3), ("radius", 6.0))


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    """``corr generate sim`` in its own process: MuJoCo's OSMesa (and triton) crash a process that has
    loaded rclpy first."""
    import os
    import subprocess
    import sys

    pytest.importorskip("mujoco")
    out = tmp_path_factory.mktemp("sim")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-m", "corr_core.cli", "generate", "sim", "--out", str(out), "--seed", "3",
                    "--frames", str(FRAMES), "--objects", "3", "--size", "96x72"], check=True, cwd=REPO_ROOT, env=env,
                   capture_output=True)
    return out


@pytest.mark.timeout(1800)  # lockstep on a loaded 2-core machine: minutes
def test_bag_process_gives_the_live_node_labels_on_a_sim_bag(sim, tmp_path, launch_node_for_test, ros_probe):
    from sensor_msgs.msg import Image

    from corr_ros.conversions import image_to_labels, stamp_to_ns
    from corr_ros.qos import reliable_qos

    bag = sim / "bags" / "episode_000"
    masks = {c: sim / c / "Annotations" / "72p" / "episode_000" / "00000.png" for c in CAMS}
    live: dict[str, list] = {c: [] for c in CAMS}
    subs = [ros_probe.node.create_subscription(Image, f"/{c}/labels", live[c].append, reliable_qos(100)) for c in CAMS]
    node = launch_node_for_test(
        "corr_ros.nodes.corr_node", "--params-file", str(REPO_ROOT / "config" / "corr_node.yaml"),
        "-p", "random_init:=true", "-p", "camera_timeout:=0.0",
        *(arg for name, value in SETTINGS for arg in ("-p", f"{name}:={value}")),
    )
    ros_probe.wait_for(lambda: node.check_alive() and all(s.get_publisher_count() > 0 for s in subs), 240.0,
                       "corr_node to publish labels")
    player = launch_node_for_test(
        "corr_ros.nodes.player", "--params-file", str(REPO_ROOT / "config" / "player.yaml"),
        "-p", f"bag:={bag}", "-p", "cameras:=['ego', 'exo1']", "-p", f"masks:=['{masks['ego']}', '{masks['exo1']}']",
        "-p", "rate:=20.0", "-p", "wait_for_labels:=true", "-p", "wait_for_subscribers:=60.0",
        "-p", "labels_timeout:=120.0",  # lockstep: a loaded machine must not make the player go on alone
    )
    ros_probe.wait_for(lambda: not player.alive(), 900.0, "corr_player to play the bag")
    assert player.wait(timeout=5) == 0, player.log()
    assert f"done: {FRAMES} frames published, 0 waited out without labels" in player.log()
    ros_probe.wait_for(lambda: all(len(live[c]) == FRAMES for c in CAMS), 30.0, "the labels of every frame")

    # `corr bag process` in its own process, as a user runs it (torch's lazy triton import crashes a
    # process that has loaded rclpy)
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "labels"
    cmd = [sys.executable, "-m", "corr_core.cli", "bag", "process", str(bag), str(out), "--random-init", "0",
           "--masks", ",".join(f"{c}={p}" for c, p in masks.items()), "--no-progress",
           *(arg for name, value in SETTINGS for arg in (f"--{name}", str(value)))]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=900)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["sets"] == FRAMES
    from rosbags.highlevel import AnyReader

    from corr_core.data.bag import decode_image

    offline: dict[str, dict[int, np.ndarray]] = {c: {} for c in CAMS}
    with AnyReader([out]) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic.endswith("/labels"):
                msg = reader.deserialize(raw, conn.msgtype)
                offline[conn.topic.split("/")[1]][msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = (
                    decode_image(msg), msg.header.frame_id)
    moved = 0
    for cam in CAMS:
        assert len(offline[cam]) == FRAMES
        for msg in live[cam]:
            labels, frame_id = offline[cam][stamp_to_ns(msg.header)]
            assert frame_id == msg.header.frame_id
            np.testing.assert_array_equal(labels, image_to_labels(msg), err_msg=f"{cam} at {stamp_to_ns(msg.header)}")
        first = image_to_labels(live[cam][0])
        moved += sum(not np.array_equal(image_to_labels(m), first) for m in live[cam][1:])
    assert moved, "the labels must change over the episode (a test that compares constants proves nothing)"
