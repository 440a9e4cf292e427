"""corr_node under faults, over real ROS 2 topics: a camera that stops and comes back, a burst of
malformed messages, a checkpoint swap through reconfigure while images keep coming.

Each fault must leave a clear log line and lose no output: for every set the node processed (its
summary), the labels of each of its cameras arrive. Camera inputs are reliable here (deep
history), so what the node counts can be compared with what was sent.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from ros_driver import CAMS, NODE, STEP_S, Driver, H, W
from ros_driver import count as _count

pytestmark = pytest.mark.ros

DEPTH = 200


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    import torch

    from corr_core.io.checkpoint import save_checkpoint
    from corr_core.models import build_backbone

    out = {}
    for seed, name in ((0, "first"), (1, "second")):
        torch.manual_seed(seed)
        net = build_backbone("resnet18_s8")
        out[name] = save_checkpoint(tmp_path_factory.mktemp("ckpt") / name,
                                    {f"backbone.{k}": v for k, v in net.state_dict().items()},
                                    {"arch": "resnet18_s8", "method": "random-init", "kind": "backbone"})
    return out


@pytest.fixture(scope="module")
def node_proc(launch_node, checkpoints):
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    return launch_node(
        "corr_ros.nodes.corr_node", "--params-file", str(repo / "config" / "corr_node.yaml"),
        "-p", f"checkpoint:={checkpoints['first']}", "-p", "camera_timeout:=0.5", "-p", "diagnostics_period:=0.2",
        "-p", "qos.input.reliability:=reliable", "-p", f"qos.input.depth:={DEPTH}", "-p", "context:=4",
    )


@pytest.fixture(scope="module")
def drv(node_proc, ros_probe):
    from sensor_msgs.msg import Image

    from corr_ros.qos import reliable_qos

    d = Driver(ros_probe)
    # deep reliable writers: nothing sent in a burst is lost before the node has read it
    d.image_pubs = {c: ros_probe.node.create_publisher(Image, f"{c}/image_raw", reliable_qos(DEPTH)) for c in CAMS}
    ros_probe.wait_for(lambda: node_proc.check_alive() and all(s.get_publisher_count() > 0 for s in d.label_subs),
                       300.0, "corr_node to come up (a loaded machine takes minutes)")
    d.wait_connected(node_proc)
    stamp = d.next_stamp()
    d.send_masks(stamp)
    d.send_until_labels(stamp)
    return d


def _no_lost_output(drv: Driver) -> int:
    """Every processed set's summary has the labels of each of its cameras; returns the sets checked."""
    from corr_ros.conversions import stamp_to_ns

    drv.wait_labels(drv.send_pair())  # lockstep: everything before has been published
    drv.probe.spin(0.3)
    labels = {c: {stamp_to_ns(m.header) for m in drv.labels[c]} for c in CAMS}
    summaries = [json.loads(m.data) for m in drv.summaries]
    for summary in summaries:
        for cam, entry in summary["cameras"].items():
            assert entry["stamp_ns"] in labels[cam], f"set {summary['stamp_ns']}: labels of {cam} lost"
    for cam in CAMS:  # and no labels without their set
        assert labels[cam] <= {s["cameras"][cam]["stamp_ns"] for s in summaries if cam in s["cameras"]}
    return len(summaries)


def test_a_camera_that_stops_and_comes_back(drv, node_proc):
    drv.wait_labels(drv.send_pair())

    warning = "no images for camera 'exo1' on /exo1/image_raw for more than 0.5 s: no synchronised sets can be " \
              "formed (receiving from ['ego'])"
    seen: dict[str, dict] = {}

    def only_ego_until_reported():  # ego keeps sending, exo1 has stopped
        drv.send_image("ego", drv.next_stamp())
        drv.probe.spin(0.1)
        st = drv.status(f"{NODE}: pipeline")
        if st and st["missing_cameras"] == "exo1":
            seen["status"] = st
        return "status" in seen and warning in node_proc.log()

    drv.probe.wait_for(only_ego_until_reported, 2 * STEP_S, "exo1 reported missing, with its warning")
    assert seen["status"]["_level"] == 1 and "exo1" in seen["status"]["_message"]
    stamp = drv.send_until_labels()  # exo1 is back: sets again, both cameras labelled
    assert drv.labels_at("exo1", stamp) is not None
    drv.probe.wait_for(lambda: "camera 'exo1' is back: images again on /exo1/image_raw" in node_proc.log(), STEP_S,
                       "the log line of exo1 coming back")
    drv.wait_status(f"{NODE}: pipeline", lambda s: s["missing_cameras"] == "" and s["_level"] == 0, "OK again")
    assert _no_lost_output(drv) > 0


def test_a_burst_of_malformed_messages_is_counted_and_logged_once(drv, node_proc):
    from sensor_msgs.msg import Image

    def drops(st) -> int:
        return sum(int(v) for k, v in st.items() if k.startswith("dropped/") and k != "dropped/unmatched by sync")

    before = drops(drv.wait_status(f"{NODE}: camera ego", lambda s: True, "ego status"))
    lines_before = node_proc.log().count("camera 'ego': dropped input")
    bad = []
    for _ in range(15):  # data shorter than height * step
        bad.append(Image(height=H, width=W, encoding="rgb8", step=3 * W, data=bytes(3 * W * H // 2)))
    for _ in range(15):  # an encoding corr does not decode
        bad.append(Image(height=H, width=W, encoding="yuv422", step=2 * W, data=bytes(2 * W * H)))
    for _ in range(10):  # no pixels
        bad.append(Image(height=0, width=0, encoding="rgb8", step=0, data=b""))
    for msg in bad:
        msg.header = drv.header("ego", drv.next_stamp())
        drv.image_pubs["ego"].publish(msg)
    from rclpy.duration import Duration

    assert drv.image_pubs["ego"].wait_for_all_acked(Duration(seconds=30.0))
    st = drv.wait_status(f"{NODE}: camera ego", lambda s: drops(s) - before >= len(bad),
                         "every malformed message to be counted")
    assert drops(st) - before == len(bad)
    assert _count(st, "dropped/unknown encoding") >= 15
    assert node_proc.alive()
    stamp = drv.send_pair()  # still tracking
    found = drv.wait_labels(stamp)
    from corr_ros.conversions import image_to_labels

    assert set(np.unique(image_to_labels(found["ego"]))) == {0, 3}
    new_lines = node_proc.log().count("camera 'ego': dropped input") - lines_before
    assert 1 <= new_lines <= 3, f"{new_lines} warnings for a burst of {len(bad)}: they must be throttled per reason"
    assert _no_lost_output(drv) > 0


def test_a_checkpoint_swap_through_reconfigure_while_images_keep_coming(drv, node_proc, checkpoints):
    stop = threading.Event()
    sent: list[int] = []

    def keep_sending() -> None:  # 10 Hz pairs, whatever the node's state
        while not stop.wait(0.1):
            sent.append(drv.send_pair())

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        drv.probe.wait_for(lambda: len(sent) >= 3, STEP_S, "images flowing")
        assert drv.transition("deactivate", timeout=120.0) and drv.transition("cleanup", timeout=120.0)
        res = drv.set_param("checkpoint", str(checkpoints["second"]))
        assert res.successful, res.reason
        assert drv.transition("configure", timeout=120.0) and drv.transition("activate")
        drv.probe.wait_for(lambda: f"from {checkpoints['second']} on cpu" in node_proc.log(), STEP_S,
                           "the log line of the new network")
        assert drv.state() == "active"
    finally:
        stop.set()
        sender.join(10.0)
    drv.wait_connected(node_proc)
    stamp = drv.next_stamp()
    drv.send_masks(stamp)  # the new trackers need masks
    found = drv.wait_labels(drv.send_until_labels(stamp))
    assert all((m.height, m.width) == (H, W) for m in found.values())
    assert _no_lost_output(drv) > 0
    assert node_proc.alive()
