"""Test-side driver of a ``corr_node`` process: publishes masks and images, collects its outputs.

Shared by test_ros_node.py and test_ros_node_inputs.py. Images go to the node over its
best-effort (sensor-data) subscription, so a message sent before the node's reader has matched
this writer is lost without a trace: the ``send_until_*`` helpers resend, with a newer stamp, until
the node's outputs show that it got one (waiting on conditions, never sleeping).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

W, H = 64, 48
CAMS = ("ego", "exo1")
NODE = "corr_node"
STARTUP_S = 90.0
STEP_S = 30.0
RESEND_S = 3.0
T0_NS = 1_700_000_000_000_000_000


def make_scene(cam: str, size: tuple[int, int] = (H, W)) -> tuple[np.ndarray, np.ndarray]:
    """A static textured scene and its label map: ego has object 3, exo1 objects 5 and 7."""
    h, w = size
    rng = np.random.default_rng(0 if cam == "ego" else 1)
    image = (rng.integers(90, 140, (h, w, 3))).astype(np.uint8)
    labels = np.zeros((h, w), np.uint16)
    sy, sx = h / H, w / W
    boxes = [(8, 36, 10, 40, 3, (220, 40, 40))] if cam == "ego" else [
        (6, 30, 4, 28, 5, (40, 200, 60)), (20, 44, 36, 60, 7, (40, 60, 220))]
    for y0, y1, x0, x1, obj, colour in boxes:
        ys, xs = slice(round(y0 * sy), round(y1 * sy)), slice(round(x0 * sx), round(x1 * sx))
        image[ys, xs] = colour
        labels[ys, xs] = obj
    return image, labels


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def count(values: dict[str, str] | None, key: str) -> int:
    """An integer diagnostics value (0 when absent)."""
    return int(values.get(key, "0")) if values else 0


class Driver:
    """Publishers/subscribers on a node's topics, plus helpers to send frames and read results.

    Args:
        probe: the test-side :class:`conftest.RosProbe`.
        node_name: the node's name (diagnostics statuses and services are named after it).
        ns: the node's namespace ("" or e.g. "/first"); its topics are relative to it.
    """

    def __init__(self, probe, node_name: str = NODE, ns: str = "") -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState, GetState
        from rcl_interfaces.srv import GetParameters, SetParameters
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from corr_ros.qos import reliable_qos

        self.probe = probe
        self.node_name = node_name
        node = probe.node
        prefix = f"{ns}/" if ns else ""
        self.image_pubs = {c: node.create_publisher(Image, f"{prefix}{c}/image_raw", reliable_qos(10)) for c in CAMS}
        self.mask_pubs = {c: node.create_publisher(Image, f"{prefix}{c}/masks_in", reliable_qos(10)) for c in CAMS}
        self.labels: dict[str, list] = {c: [] for c in CAMS}
        self.label_subs = [
            node.create_subscription(Image, f"{prefix}{c}/labels", self.labels[c].append, reliable_qos(100))
            for c in CAMS
        ]
        self.overlays = probe.collect(Image, f"{prefix}ego/overlay", reliable_qos(100))
        self.summaries = probe.collect(String, f"{prefix}corr/summary", reliable_qos(100))
        self.diagnostics = probe.collect(DiagnosticArray, "/diagnostics", reliable_qos(100))
        self.set_params = node.create_client(SetParameters, f"{ns}/{node_name}/set_parameters")
        self.get_params = node.create_client(GetParameters, f"{ns}/{node_name}/get_parameters")
        self.get_state = node.create_client(GetState, f"{ns}/{node_name}/get_state")
        self.change_state = node.create_client(ChangeState, f"{ns}/{node_name}/change_state")
        self.scenes = {c: make_scene(c) for c in CAMS}
        self.stamp_ns = T0_NS
        self.original_params: dict[str, Any] = {}

    def wait_connected(self, proc) -> None:
        pubs = [*self.image_pubs.values(), *self.mask_pubs.values()]
        self.probe.wait_for(
            lambda: (
                proc.check_alive()
                and all(p.get_subscription_count() > 0 for p in pubs)
                and all(s.get_publisher_count() > 0 for s in self.label_subs)
            ),
            STARTUP_S,
            f"{self.node_name} to subscribe to the inputs and publish labels",
        )

    def header(self, cam: str, stamp_ns: int):
        from std_msgs.msg import Header

        from corr_ros.conversions import ns_to_stamp

        return ns_to_stamp(stamp_ns, Header(frame_id=f"{cam}_optical_frame"))

    def next_stamp(self) -> int:
        self.stamp_ns += 100_000_000
        return self.stamp_ns

    def send_mask(self, cam: str, labels: np.ndarray, stamp_ns: int, encoding: str = "mono16") -> None:
        """Publishes one mask and waits until the node has it (masks are reliable)."""
        from rclpy.duration import Duration

        from corr_ros.conversions import array_to_image

        dtype = np.uint8 if encoding == "mono8" else np.uint16
        self.mask_pubs[cam].publish(array_to_image(labels.astype(dtype), encoding, self.header(cam, stamp_ns)))
        assert self.mask_pubs[cam].wait_for_all_acked(Duration(seconds=5.0))

    def send_masks(self, stamp_ns: int, encoding: str = "mono16") -> None:
        for cam in CAMS:
            self.send_mask(cam, self.scenes[cam][1], stamp_ns, encoding)

    def send_image(self, cam: str, stamp_ns: int, image: Any = None, encoding: str = "rgb8"):
        """Publishes the camera's scene, or ``image``: an array in ``encoding``, or a ready
        ``sensor_msgs/Image`` (its header is set here)."""
        from corr_ros.conversions import array_to_image

        image = self.scenes[cam][0] if image is None else image
        if isinstance(image, np.ndarray):
            image = array_to_image(image, encoding, self.header(cam, stamp_ns))
        else:
            image.header = self.header(cam, stamp_ns)
        self.image_pubs[cam].publish(image)

    def send_pair(self, stamp_ns: int | None = None, images: dict[str, Any] | None = None) -> int:
        stamp_ns = self.next_stamp() if stamp_ns is None else stamp_ns
        for cam in CAMS:
            self.send_image(cam, stamp_ns, (images or {}).get(cam))
        return stamp_ns

    def send_until(self, condition: Callable[[], Any], what: str, stamp_ns: int | None = None,
                   images: dict[str, Any] | None = None, timeout: float = STEP_S) -> Any:
        """Sends a pair (first at ``stamp_ns``), and again with newer stamps every ``RESEND_S``
        until ``condition()`` holds (an image lost before discovery completes is resent)."""
        state: dict[str, Any] = {"next": time.monotonic()}

        def check():
            value = condition()
            if value:
                return value
            now = time.monotonic()
            if now >= state["next"]:
                state["next"] = now + RESEND_S
                self.send_pair(stamp_ns if state.get("sent") is None else None, images)
                state["sent"] = True
            return None

        return self.probe.wait_for(check, timeout, what)

    def send_until_labels(self, stamp_ns: int | None = None, images: dict[str, Any] | None = None) -> int:
        """Sends pairs until the node publishes labels of one of them for every camera; that stamp."""
        first = self.stamp_ns + 100_000_000 if stamp_ns is None else stamp_ns

        def labelled():
            for stamp in range(first, self.stamp_ns + 1, 100_000_000):
                if all(self.labels_at(c, stamp) for c in CAMS):
                    return stamp
            return None

        return self.send_until(labelled, "labels from every camera", stamp_ns, images)

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

    def get_param(self, name: str) -> Any:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        res = self.probe.call(self.get_params, GetParameters.Request(names=[name]))
        return parameter_value_to_python(res.values[0])

    def set_param(self, name: str, value):
        """Sets a parameter (remembering its value before the first change, see :meth:`changed`)."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        if name not in self.original_params:
            self.original_params[name] = self.get_param(name)
        req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.probe.call(self.set_params, req).results[0]

    def changed(self) -> dict[str, tuple[Any, Any]]:
        """``{name: (original, now)}`` of the parameters set through :meth:`set_param` that differ."""
        now = {name: self.get_param(name) for name in self.original_params}
        return {n: (v, now[n]) for n, v in self.original_params.items() if now[n] != v}

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.probe.call(self.get_state, GetState.Request()).current_state.label

    def transition(self, label: str, timeout: float = 10.0) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request(transition=Transition(label=label))
        return self.probe.call(self.change_state, req, timeout=timeout).success
