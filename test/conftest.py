"""Shared fixtures for the ROS 2 tests: an isolated DDS domain, node subprocesses, a test-side probe.

Every test session gets its own ``ROS_DOMAIN_ID`` (``CORR_TEST_ROS_DOMAIN_ID``, or random in
1..200) with discovery limited to localhost, set both for this process and for the node
subprocesses, so concurrent sessions do not see each other's topics. Node processes are started
with :mod:`corr_ros.launcher`, the launcher ``corr demo`` uses. Nothing here imports rclpy at module
import time: non-ROS tests never pay for it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def ros_env() -> Iterator[dict[str, str]]:
    """Environment for ROS processes of this session (also applied to this process)."""
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed")
    from corr_ros.launcher import ROS_SETTINGS, isolated_env

    domain = os.environ.get("CORR_TEST_ROS_DOMAIN_ID") or None
    env = isolated_env(domain_id=domain, pythonpath=[str(REPO_ROOT)])
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ROS_LOCALHOST_ONLY", raising=False)  # deprecated in Jazzy; the range replaces it
        for key in ("ROS_DOMAIN_ID", *ROS_SETTINGS):
            mp.setenv(key, env[key])
        yield env


@contextlib.contextmanager
def _launcher(env: dict[str, str], logs: Path) -> Iterator[Callable[..., Any]]:
    from corr_ros.launcher import RosProcess

    procs: list[RosProcess] = []

    def launch(module: str, *ros_args: str, name: str | None = None) -> RosProcess:
        name = name or module.rsplit(".", 1)[-1]
        proc = RosProcess.start(module, list(ros_args), env, logs / f"{name}_{len(procs)}.log", cwd=REPO_ROOT)
        procs.append(proc)
        return proc

    try:
        yield launch
    finally:
        for proc in procs:
            proc.stop(timeout=5.0)


@pytest.fixture(scope="module")
def launch_node(ros_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Factory ``launch_node(module, *ros_args, name=...)`` -> :class:`corr_ros.launcher.RosProcess`
    (the launcher ``corr demo`` uses); every process is stopped at the end of the module."""
    with _launcher(ros_env, tmp_path_factory.mktemp("ros_logs")) as launch:
        yield launch


@pytest.fixture
def launch_node_for_test(ros_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Like :func:`launch_node`, but its processes are stopped at the end of the test."""
    with _launcher(ros_env, tmp_path / "ros_logs") as launch:
        yield launch


class RosProbe:
    """A test-side rclpy node in its own context; :meth:`wait_for` spins it until a condition holds."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def collect(self, msg_type: Any, topic: str, qos: Any = 10) -> list[Any]:
        """Subscribes ``topic``; returns the list the messages are appended to."""
        got: list[Any] = []
        self.node.create_subscription(msg_type, topic, got.append, qos)
        return got

    def spin(self, seconds: float) -> None:
        """Processes callbacks for (at most) ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
        """Spins until ``condition()`` is truthy and returns its value; fails the test on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def call(self, client: Any, request: Any, timeout: float = 10.0) -> Any:
        """Calls a service and waits for the response."""
        self.wait_for(lambda: client.service_is_ready(), timeout, f"service {client.srv_name}")
        future = client.call_async(request)
        self.wait_for(future.done, timeout, f"response of {client.srv_name}")
        return future.result()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def ros_probe(ros_env: dict[str, str]) -> Iterator[RosProbe]:
    """A test-side node in this session's ROS domain (one per test module)."""
    probe = RosProbe("corr_test_probe")
    yield probe
    probe.close()
