"""corr_node over real ROS 2 topics: a node subprocess driven from this process (tiny 64x48 images).

The node runs with the package's config/corr_node.yaml, a randomly initialised network and two
cameras; the test publishes masks and images, and checks labels, headers, ids, robustness to bad
input, diagnostics, parameter validation and lifecycle behaviour.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

REPO_ROOT = Path(__file__).resolve().parent.parent
W, H = 64, 48
CAMS = ("ego", "exo1")
NODE = "corr_node"
STARTUP_S = 90.0
STEP_S = 30.0
T0_NS = 1_700_000_000_000_000_000


def make_scene(cam: str) -> tuple[np.ndarray, np.ndarray]:
    """A static textured scene and its label map: ego has object 3, exo1 objects 5 and 7."""
    rng = np.random.default_rng(0 if cam == "ego" else 1)
    image = (rng.integers(90, 140, (H, W, 3))).astype(np.uint8)
    labels = np.zeros((H, W), np.uint16)
    if cam == "ego":
        image[8:36, 10:40] = (220, 40, 40)
        labels[8:36, 10:40] = 3
    else:
        image[6:30, 4:28] = (40, 200, 60)
        labels[6:30, 4:28] = 5
        image[20:44, 36:60] = (40, 60, 220)
        labels[20:44, 36:60] = 7
    return image, labels


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


class Driver:
    """Publishers/subscribers on the node's topics, plus helpers to send frames and read results."""

    def __init__(self, probe, node_name: str = NODE) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState, GetState
        from rcl_interfaces.srv import SetParameters
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from corr_ros.qos import reliable_qos

        self.probe = probe
        node = probe.node
        self.image_pubs = {c: node.create_publisher(Image, f"{c}/image_raw", reliable_qos(10)) for c in CAMS}
        self.mask_pubs = {c: node.create_publisher(Image, f"{c}/masks_in", reliable_qos(10)) for c in CAMS}
        self.labels = {c: [] for c in CAMS}
        self.label_subs = [
            node.create_subscription(Image, f"{c}/labels", self.labels[c].append, reliable_qos(100))
            for c in CAMS
        ]
        self.overlays = probe.collect(Image, "ego/overlay", reliable_qos(100))
        self.summaries = probe.collect(String, "corr/summary", reliable_qos(100))
        self.diagnostics = probe.collect(DiagnosticArray, "/diagnostics", reliable_qos(100))
        self.set_params = node.create_client(SetParameters, f"/{node_name}/set_parameters")
        self.get_state = node.create_client(GetState, f"/{node_name}/get_state")
        self.change_state = node.create_client(ChangeState, f"/{node_name}/change_state")
        self.scenes = {c: make_scene(c) for c in CAMS}
        self.stamp_ns = T0_NS

    def wait_connected(self, proc) -> None:
        pubs = [*self.image_pubs.values(), *self.mask_pubs.values()]
        self.probe.wait_for(
            lambda: (
                proc.check_alive()
                and all(p.get_subscription_count() > 0 for p in pubs)
                and all(s.get_publisher_count() > 0 for s in self.label_subs)
            ),
            STARTUP_S,
            "corr_node to subscribe to the inputs and publish labels",
        )

    def header(self, cam: str, stamp_ns: int):
        from std_msgs.msg import Header

        from corr_ros.conversions import ns_to_stamp

        return ns_to_stamp(stamp_ns, Header(frame_id=f"{cam}_optical_frame"))

    def next_stamp(self) -> int:
        self.stamp_ns += 100_000_000
        return self.stamp_ns

    def send_masks(self, stamp_ns: int) -> None:
        from corr_ros.conversions import labels_to_image

        for cam in CAMS:
            self.mask_pubs[cam].publish(labels_to_image(self.scenes[cam][1], self.header(cam, stamp_ns)))
        for pub in self.mask_pubs.values():
            from rclpy.duration import Duration

            assert pub.wait_for_all_acked(Duration(seconds=5.0))

    def send_image(self, cam: str, stamp_ns: int, image: np.ndarray | None = None, encoding: str = "rgb8"):
        from corr_ros.conversions import array_to_image

        image = self.scenes[cam][0] if image is None else image
        self.image_pubs[cam].publish(array_to_image(image, encoding, self.header(cam, stamp_ns)))

    def send_pair(self, stamp_ns: int | None = None) -> int:
        stamp_ns = self.next_stamp() if stamp_ns is None else stamp_ns
        for cam in CAMS:
            self.send_image(cam, stamp_ns)
        return stamp_ns

    def labels_at(self, cam: str, stamp_ns: int):
        from corr_ros.conversions import stamp_to_ns

        return next((m for m in self.labels[cam] if stamp_to_ns(m.header) == stamp_ns), None)

    def wait_labels(self, stamp_ns: int) -> dict:
        return self.probe.wait_for(
            lambda: (
                (found := {c: self.labels_at(c, stamp_ns) for c in CAMS}) and all(found.values()) and found
            ),
            STEP_S,
            f"labels of stamp {stamp_ns} from every camera",
        )

    def status(self, name: str) -> dict[str, str] | None:
        """The values (plus level and message) of the newest diagnostic status called ``name``."""
        for array in reversed(self.diagnostics):
            for st in array.status:
                if st.name == name:
                    values = {kv.key: kv.value for kv in st.values}
                    values["_level"] = (
                        int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else st.level
                    )
                    values["_message"] = st.message
                    return values
        return None

    def wait_status(self, name: str, predicate, what: str, timeout: float = STEP_S) -> dict[str, str]:
        def check():
            st = self.status(name)
            return st if st is not None and predicate(st) else None

        return self.probe.wait_for(check, timeout, what)

    def set_param(self, name: str, value):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.probe.call(self.set_params, req).results[0]

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.probe.call(self.get_state, GetState.Request()).current_state.label

    def transition(self, label: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request(transition=Transition(label=label))
        return self.probe.call(self.change_state, req).success


def _count(values: dict[str, str] | None, key: str) -> int:
    return int(values.get(key, "0")) if values else 0


@pytest.fixture(scope="module")
def node_proc(launch_node):
    return launch_node(
        "corr_ros.nodes.corr_node",
        "--params-file",
        str(REPO_ROOT / "config" / "corr_node.yaml"),
        "-p",
        "random_init:=true",
        "-p",
        "camera_timeout:=0.0",
        "-p",
        "diagnostics_period:=0.2",
    )


@pytest.fixture(scope="module")
def bad_node_proc(launch_node):
    """A second node whose checkpoint does not exist (started early: it boots alongside the first)."""
    return launch_node(
        "corr_ros.nodes.corr_node",
        "--params-file",
        str(REPO_ROOT / "config" / "corr_node.yaml"),
        "-r",
        "__node:=corr_node_bad",
        "-r",
        "__ns:=/bad",
        "-p",
        "checkpoint:=/nonexistent/corr_model.safetensors",
        "-p",
        "diagnostics_period:=0.2",
        name="corr_node_bad",
    )


@pytest.fixture(scope="module")
def driver(node_proc, bad_node_proc, ros_probe):
    drv = Driver(ros_probe)
    drv.wait_connected(node_proc)
    return drv


@pytest.fixture(scope="module")
def anchored(driver):
    """Sends one frame before any mask (must be dropped), then the masks: the node is tracking."""
    driver.send_pair()
    for cam in CAMS:
        driver.wait_status(
            f"{NODE}: camera {cam}",
            lambda st: _count(st, "dropped/no initial mask yet") >= 1,
            f"camera {cam}: a frame dropped as 'no initial mask yet'",
        )
    assert all(not msgs for msgs in driver.labels.values()), "no labels may be published before a mask"
    stamp = driver.next_stamp()
    driver.send_masks(stamp)
    driver.send_pair(stamp)
    driver.wait_labels(stamp)
    return driver


def test_labels_keep_masks_ids_and_headers(anchored):
    drv = anchored
    stamps = [drv.stamp_ns]
    for _ in range(3):  # lockstep: the node keeps only the newest set while busy
        stamps.append(drv.send_pair())
        drv.wait_labels(stamps[-1])
    from corr_ros.conversions import image_to_labels

    for stamp in stamps:
        for cam in CAMS:
            msg = drv.labels_at(cam, stamp)
            assert msg.encoding == "mono16"
            assert (msg.width, msg.height) == (W, H)
            assert msg.header.frame_id == f"{cam}_optical_frame"
            labels = image_to_labels(msg)
            given = drv.scenes[cam][1]
            assert set(np.unique(labels)) - {0} <= set(np.unique(given)) - {0}
            for obj in set(np.unique(given)) - {0}:
                assert iou(labels == obj, given == obj) > 0.7, f"{cam} object {obj} at {stamp}"
    last = {cam: image_to_labels(drv.labels_at(cam, stamps[-1])) for cam in CAMS}
    assert set(np.unique(last["ego"])) == {0, 3}
    assert set(np.unique(last["exo1"])) == {0, 5, 7}


def test_bad_input_is_dropped_and_reported(anchored, node_proc):
    drv = anchored
    stamp = drv.next_stamp()
    bad = drv.header("ego", stamp)
    from sensor_msgs.msg import Image

    drv.image_pubs["ego"].publish(
        Image(header=bad, height=H, width=W, encoding="yuv422", step=2 * W, data=bytes(2 * W * H))
    )
    small = np.zeros((H // 2, W // 2, 3), np.uint8)
    drv.send_image("exo1", drv.next_stamp(), small)
    from corr_ros.conversions import labels_to_image

    drv.mask_pubs["exo1"].publish(labels_to_image(np.ones((10, 10), np.uint16), drv.header("exo1", stamp)))
    ego = drv.wait_status(
        f"{NODE}: camera ego",
        lambda st: _count(st, "dropped/unknown encoding") >= 1,
        "the unknown encoding to be reported for ego",
    )
    exo = drv.wait_status(
        f"{NODE}: camera exo1",
        lambda st: _count(st, "dropped/size mismatch") >= 1 and _count(st, "dropped/mask size mismatch") >= 1,
        "the wrongly sized image and mask to be reported for exo1",
    )
    assert ego["size"] == exo["size"] == f"{W}x{H}"
    # still alive and still answering valid frames
    stamp = drv.send_pair()
    drv.wait_labels(stamp)
    assert node_proc.alive()
    pipeline = drv.wait_status(
        f"{NODE}: pipeline", lambda st: _count(st, "dropped/unknown encoding") >= 1, "pipeline drop counts"
    )
    assert _count(pipeline, "dropped/size mismatch") >= 1
    assert int(pipeline["dropped_messages"]) >= 3
    assert pipeline["lifecycle_state"] == "active"
    log = node_proc.log()
    assert "unknown encoding" in log and "yuv422" in log
    assert "size mismatch" in log


def test_overlay_and_summary(anchored):
    drv = anchored
    from corr_ros.conversions import image_to_rgb, stamp_to_ns

    def got_both():
        overlays = {stamp_to_ns(m.header): m for m in drv.overlays}
        for msg in drv.summaries:
            summary = json.loads(msg.data)
            if summary["stamp_ns"] in overlays and "ego" in summary["cameras"]:
                return overlays[summary["stamp_ns"]], summary
        drv.wait_labels(drv.send_pair())  # lockstep, so no set is dropped for being late
        drv.probe.spin(0.1)
        return None

    overlay, summary = drv.probe.wait_for(got_both, STEP_S, "an overlay and a summary for one stamp")
    assert overlay.encoding == "rgb8" and (overlay.width, overlay.height) == (W, H)
    assert overlay.header.frame_id == "ego_optical_frame"
    rgb = image_to_rgb(overlay)
    assert not np.array_equal(rgb, drv.scenes["ego"][0]), "the overlay must colour the object"
    ego = summary["cameras"]["ego"]
    assert ego["frame_id"] == "ego_optical_frame"
    assert [o["id"] for o in ego["objects"]] == [3]
    assert abs(ego["objects"][0]["area"] - int((drv.scenes["ego"][1] == 3).sum())) < 0.3 * 28 * 30
    assert sorted(o["id"] for o in summary["cameras"]["exo1"]["objects"]) == [5, 7]


def test_parameters_are_validated(anchored):
    drv = anchored
    res = drv.set_param("overlay_alpha", 2.0)
    assert not res.successful and "overlay_alpha" in res.reason
    res = drv.set_param("temperature", 0.0)
    assert not res.successful and "temperature" in res.reason
    res = drv.set_param("cameras", ["ego"])
    assert not res.successful and "structural" in res.reason
    res = drv.set_param("device", "tpu")
    assert not res.successful
    res = drv.set_param("topk", 5)
    assert res.successful, res.reason
    res = drv.set_param("slop", 0.02)
    assert res.successful, res.reason
    stamp = drv.send_pair()  # still tracking with the new settings
    drv.wait_labels(stamp)


def test_missing_camera_is_reported(anchored, node_proc):
    drv = anchored
    assert drv.set_param("camera_timeout", 0.3).successful

    def only_ego_then_status():
        drv.send_image("ego", drv.next_stamp())
        drv.probe.spin(0.1)
        st = drv.status(f"{NODE}: pipeline")
        return st if st and st["missing_cameras"] == "exo1" else None

    st = drv.probe.wait_for(only_ego_then_status, STEP_S, "exo1 to be reported missing")
    assert st["_level"] == 1 and "exo1" in st["_message"]
    assert drv.set_param("camera_timeout", 0.0).successful
    drv.probe.wait_for(
        lambda: "camera 'exo1' on /exo1/image_raw" in node_proc.log(), STEP_S, "a warning naming exo1"
    )


def test_lifecycle_transitions(anchored, node_proc):
    drv = anchored
    assert drv.state() == "active"
    assert drv.transition("deactivate")
    assert drv.state() == "inactive"
    assert not drv.set_param("checkpoint", "/other.safetensors").successful  # still configured
    assert drv.transition("activate")
    stamp = drv.send_pair()
    drv.wait_labels(stamp)
    # structural change: deactivate, clean up (trackers freed), change, configure again
    assert drv.transition("deactivate") and drv.transition("cleanup")
    assert drv.state() == "unconfigured"
    res = drv.set_param("context", 4)
    assert res.successful, res.reason
    # MER/MAST-style long-term memory: every 2nd frame, 3 frames, matched within 6 cells; frames
    # upsampled 2x before the network (labels still at the cameras' size: wait_labels checks)
    assert not drv.set_param("long_term_size", 0).successful
    assert not drv.set_param("input_scale", 0.0).successful
    settings = (("long_term_every", 2), ("long_term_size", 3), ("long_term_radius", 6.0), ("input_scale", 2.0))
    for name, value in settings:
        res = drv.set_param(name, value)
        assert res.successful, res.reason
    assert drv.transition("configure") and drv.transition("activate")
    drv.wait_connected(node_proc)
    stamp = drv.next_stamp()
    drv.send_masks(stamp)  # new trackers need new masks
    drv.send_pair(stamp)
    drv.wait_labels(stamp)
    for _ in range(4):  # frames 2 and 4 after the mask join the long-term memory
        stamp = drv.send_pair()
        found = drv.wait_labels(stamp)
    assert all((msg.height, msg.width) == (H, W) for msg in found.values())
    log = node_proc.log()
    assert "'context': 4" in log
    assert "'long_term_every': 2, 'long_term_size': 3, 'long_term_radius': 6.0, 'input_scale': 2.0" in log


def test_missing_checkpoint_keeps_node_alive(bad_node_proc, ros_probe, driver):
    from lifecycle_msgs.srv import GetState

    status = driver.wait_status(
        "corr_node_bad: pipeline",
        lambda st: st["_level"] == 2,
        "ERROR diagnostics from the node without checkpoint",
    )
    assert "/nonexistent/corr_model.safetensors" in status["_message"]
    client = ros_probe.node.create_client(GetState, "/bad/corr_node_bad/get_state")
    assert ros_probe.call(client, GetState.Request()).current_state.label == "unconfigured"
    assert bad_node_proc.alive()
    log = bad_node_proc.log()
    assert "configure failed" in log and "/nonexistent/corr_model.safetensors" in log
    # unconfigured, so structural parameters may change; then the node can be brought up
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    setter = ros_probe.node.create_client(SetParameters, "/bad/corr_node_bad/set_parameters")
    req = SetParameters.Request(
        parameters=[
            Parameter("checkpoint", value="").to_parameter_msg(),
            Parameter("random_init", value=True).to_parameter_msg(),
        ]
    )
    assert all(r.successful for r in ros_probe.call(setter, req).results)
    changer = ros_probe.node.create_client(ChangeState, "/bad/corr_node_bad/change_state")
    for label in ("configure", "activate"):
        assert ros_probe.call(
            changer, ChangeState.Request(transition=Transition(label=label)), timeout=60.0
        ).success
    assert ros_probe.call(client, GetState.Request()).current_state.label == "active"
    driver.wait_status(
        "corr_node_bad: pipeline", lambda st: st["_level"] == 0, "OK diagnostics after the fix"
    )
