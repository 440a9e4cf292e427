"""``corr_recorder``: records topics (labels, overlays, summaries, ...) into a rosbag2 file.

Messages are taken as serialised CDR bytes (raw subscriptions) and written unchanged with
``rosbags`` (message definitions from the ROS 2 Jazzy typestore that
:mod:`corr_core.data.bag` uses), stamped with their receive time like ``ros2 bag record``. The
bag is finalised (index and ``metadata.yaml`` written) on SIGINT/SIGTERM, or by itself once every
topic has ``max_messages`` messages.

Topics are given as ``name`` (the type is looked up on the ROS graph once a publisher appears)
or ``name:package/msg/Type`` (quote such entries in YAML and on the command line:
``-p "topics:=['ego/labels:sensor_msgs/msg/Image']"``).

With ``ready_file`` set, the recorder writes that file once every topic's subscription is matched
with at least one publisher (the DDS reader has found the writer, so nothing published from then
on is missed). A script that starts the publishers' input afterwards, such as ``corr demo``,
waits for the file instead of guessing from the ROS graph, which is discovered earlier than
endpoints are matched.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from corr_core.data.bag import STORAGES, BagWriter
from corr_core.errors import ConfigError, CorrError
from corr_ros.params import ParamSpec, declare_and_read
from corr_ros.qos import reliable_qos

_T = Parameter.Type

#: Every parameter of corr_recorder.
PARAMS: list[ParamSpec] = [
    ParamSpec("output", _T.STRING, "", "bag folder to create (must not exist)"),
    ParamSpec(
        "topics",
        _T.STRING_ARRAY,
        [],
        "topics to record: 'name' (type looked up on the graph) or 'name:package/msg/Type'",
        min_items=1,
    ),
    ParamSpec("storage", _T.STRING, "mcap", "rosbag2 storage plugin", choices=STORAGES),
    ParamSpec(
        "max_messages",
        _T.INTEGER,
        0,
        "stop once every topic has this many messages (0: record until SIGINT/SIGTERM)",
        range=(0, 10**9),
    ),
    ParamSpec(
        "ready_file",
        _T.STRING,
        "",
        "file written once every topic has a matched publisher ('' = none)",
    ),
    ParamSpec("qos.depth", _T.INTEGER, 100, "QoS history depth of the subscriptions", range=(1, 10000)),
    ParamSpec(
        "qos.reliability",
        _T.STRING,
        "reliable",
        "QoS reliability of the subscriptions",
        choices=("reliable", "best_effort"),
    ),
]


def message_class(msgtype: str) -> Any:
    """The rclpy message class for ``package/msg/Type``.

    Raises:
        ConfigError: if the name is malformed or the package/type is not installed.
    """
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise ConfigError(f"message type must look like 'package/msg/Type', got {msgtype!r}")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"message type {msgtype!r} is not available ({exc})") from exc


class Recorder(Node):
    """The ``corr_recorder`` node; :meth:`close` finalises the bag (call it once, at the end)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("corr_recorder", **kwargs)
        self.p = declare_and_read(self, PARAMS)
        if not self.p["output"]:
            raise ConfigError("parameter 'output' (the bag folder to create) is empty")
        self.path = Path(self.p["output"])
        self._closed = True  # until the writer is open
        self._qos = reliable_qos(self.p["qos.depth"], self.p["qos.reliability"])
        self.counts: dict[str, int] = {}
        self._subs: dict[str, Any] = {}  # topic -> subscription
        self.ready = False
        self._types: dict[str, str] = {}  # topic -> message type, once subscribed
        self._waiting: dict[str, str] = {}  # resolved topic -> type ('' = look it up)
        for entry in self.p["topics"]:
            name, _, msgtype = entry.partition(":")
            resolved = self.resolve_topic_name(name.strip())
            if msgtype:
                message_class(msgtype)  # fail early on a bad type
            self._waiting[resolved] = msgtype.strip()
            self.counts[resolved] = 0
        self._writer = BagWriter(self.path, storage=self.p["storage"])
        self._closed = False
        self._started = time.monotonic()
        self._warned = False
        self._discover()
        self._timer = self.create_timer(0.2, self._discover)
        self.get_logger().info(f"recording {sorted(self.counts)} to {self.path} ({self.p['storage']})")

    @property
    def done(self) -> bool:
        """True once every topic reached ``max_messages`` (never when it is 0)."""
        limit = int(self.p["max_messages"])
        return bool(limit) and all(n >= limit for n in self.counts.values())

    def _discover(self) -> None:
        graph = dict(self.get_topic_names_and_types()) if self._waiting else {}
        for topic, msgtype in list(self._waiting.items()):
            if not msgtype:
                types = graph.get(topic, [])
                if not types:
                    continue
                msgtype = types[0]
            self._subscribe(topic, msgtype)
            del self._waiting[topic]
        if self._waiting and not self._warned and time.monotonic() - self._started > 10.0:
            self._warned = True
            self.get_logger().warning(f"no publisher yet on {sorted(self._waiting)} (type unknown)")
        self._check_ready()

    def _check_ready(self) -> None:
        """Writes ``ready_file`` the first time every subscription has a matched publisher."""
        if self.ready or self._waiting or not all(s.get_publisher_count() > 0 for s in self._subs.values()):
            return
        self.ready = True
        self.get_logger().info(f"every topic has a matched publisher: {sorted(self._subs)}")
        if self.p["ready_file"]:
            path = Path(self.p["ready_file"])
            tmp = path.with_name(path.name + ".part")
            tmp.write_text("\n".join(sorted(self._subs)) + "\n")
            tmp.replace(path)  # appears whole or not at all

    def _subscribe(self, topic: str, msgtype: str) -> None:
        cls = message_class(msgtype)
        self._writer.connect(topic, msgtype)
        self._types[topic] = msgtype
        self._subs[topic] = self.create_subscription(
            cls, topic, lambda data, t=topic: self._on_message(t, data), self._qos, raw=True
        )
        self.get_logger().info(f"recording {topic} ({msgtype})")

    def _on_message(self, topic: str, data: bytes) -> None:
        if self._closed:
            return
        limit = int(self.p["max_messages"])
        if limit and self.counts[topic] >= limit:
            return
        self._writer.add_raw(topic, self._types[topic], self.get_clock().now().nanoseconds, data)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finalises the bag (safe to call twice)."""
        if not self._closed:
            self._closed = True
            self._writer.close()
            self.get_logger().info(f"bag {self.path} closed: {self.counts}")


def _drain(executor: SingleThreadedExecutor, node: Recorder, budget_s: float = 1.0) -> None:
    """Writes what already arrived before the bag is closed (until two quiet spins or the budget)."""
    deadline = time.monotonic() + budget_s
    quiet, last = 0, sum(node.counts.values())
    while quiet < 2 and time.monotonic() < deadline and not node.done:
        executor.spin_once(timeout_sec=0.05)
        total = sum(node.counts.values())
        quiet = quiet + 1 if total == last else 0
        last = total


def main(args: list[str] | None = None) -> int:
    """Records until SIGINT/SIGTERM or ``max_messages``; the bag is always finalised.

    The signal handlers only ask the loop to stop: messages already received are still written,
    then the bag is closed, then ROS shuts down.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    node: Recorder | None = None
    executor: SingleThreadedExecutor | None = None
    code = 0
    try:
        node = Recorder()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not node.done and not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
        if stop.is_set() and rclpy.ok():
            _drain(executor, node)
    except CorrError as exc:
        rclpy.logging.get_logger("corr_recorder").error(str(exc))
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
