"""Deactivating corr_node while its worker is inside a long set must not lose that set's labels.

``CameraPipeline.stop`` (deactivate, cleanup, a checkpoint swap) used to give the worker 5 s: on
a loaded machine a set can take longer, the publishers were then deactivated (and destroyed) under
the worker, and the labels of a set it had processed were lost (or its publish raised
"publisher's context is invalid"). The pipeline now waits for the set, saying so in the log.
Driven here with a stand-in node (no DDS) and a tracker that blocks until released.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed")


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = error = info


class Publisher:
    def __init__(self, topic: str, node: FakeNode) -> None:
        self.topic, self.node, self.active, self.sent = topic, node, True, []

    def publish(self, msg) -> None:
        if self.active:  # a lifecycle publisher drops messages once deactivated
            self.sent.append(msg)

    def get_subscription_count(self) -> int:
        return 1


class FakeNode:
    """What CameraPipeline uses of the lifecycle node."""

    def __init__(self) -> None:
        self.log = Log()
        self.pubs: dict[str, Publisher] = {}

    def get_logger(self) -> Log:
        return self.log

    def create_subscription(self, msg_type, topic, callback, qos):
        return SimpleNamespace(topic_name="/" + topic)

    def create_lifecycle_publisher(self, msg_type, topic, qos):
        self.pubs[topic] = Publisher(topic, self)
        return self.pubs[topic]

    def destroy_subscription(self, sub) -> None:
        pass

    def destroy_lifecycle_publisher(self, pub) -> None:
        pub.active = False

    def deactivate(self) -> None:
        for pub in self.pubs.values():
            pub.active = False


class SlowTracker:
    """Echoes its masks, but only once released (a set that takes long on a loaded machine)."""

    def __init__(self) -> None:
        self.inside, self.release = threading.Event(), threading.Event()
        self.anchored, self.image_size, self.model = False, None, None

    def reset(self) -> None:
        self.anchored = False

    def step(self, frame, masks=None):
        self.inside.set()
        assert self.release.wait(60.0)
        self.anchored, self.image_size = True, frame.shape[:2]
        return masks


def test_deactivating_waits_for_the_set_in_progress_and_publishes_its_labels(monkeypatch):
    from corr_core.runtime.drops import DropCounter, Timings
    from corr_core.runtime.frames import SizeGate
    from corr_core.runtime.processing import Frame, SetProcessor
    from corr_core.sync import MaskAnchors
    from corr_ros.conversions import ns_to_stamp
    from corr_ros.qos import reliable_qos
    from corr_ros.tracking import pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "STOP_POLL_S", 0.05, raising=False)
    node, tracker = FakeNode(), SlowTracker()
    proc = SetProcessor({"cam": tracker}, MaskAnchors(), {"cam": SizeGate()}, DropCounter(node.log), node.log)
    qos = {role: reliable_qos(10) for role in ("input", "masks", "output")}
    pipe = pipeline_module.CameraPipeline(node, proc, proc.drops, Timings(), 0.05, 5, qos, False, lambda: (0.5, False))
    pipe.start()
    proc.anchors.put("cam", 0, np.ones((8, 8), np.uint16))
    pipe.worker.add("cam", 1, Frame(ns_to_stamp(1), np.zeros((8, 8, 3), np.uint8), time.monotonic()))
    assert tracker.inside.wait(30.0), "the worker never started the set"
    stopped: dict[str, bool] = {}
    stopper = threading.Thread(target=lambda: stopped.setdefault("ok", pipe.stop()))
    stopper.start()
    deadline = time.monotonic() + 30.0
    while sum("still processing" in line for line in node.log.lines) < 3 and time.monotonic() < deadline:
        stopper.join(0.05)
        assert "ok" not in stopped, "stop() gave up on the worker in the middle of a set"
    assert "ok" not in stopped and pipe.worker.running
    tracker.release.set()
    stopper.join(30.0)
    assert stopped == {"ok": True}
    node.deactivate()  # what on_deactivate does next
    assert len(node.pubs["cam/labels"].sent) == 1, "the labels of the set processed before deactivation"
