"""Shared fixtures for the ROS 2 tests: an isolated DDS domain, node subprocesses, a test-side probe.

Every test session gets its own random ``ROS_DOMAIN_ID`` (1..200) with discovery limited to
localhost, set both for this process and for the node subprocesses, so concurrent sessions do not
see each other's topics. Nothing here imports rclpy at module import time: non-ROS tests never
pay for it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
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
    domain = os.environ.get("CORR_TEST_ROS_DOMAIN_ID") or str(random.SystemRandom().randint(1, 200))
    settings = {
        "ROS_DOMAIN_ID": domain,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "RCUTILS_COLORIZED_OUTPUT": "0",
        "RCUTILS_LOGGING_BUFFERED_STREAM": "0",
        "PYTHONUNBUFFERED": "1",
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ROS_LOCALHOST_ONLY", raising=False)  # deprecated in Jazzy; the range above replaces it
        for key, value in settings.items():
            mp.setenv(key, value)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        yield env


class NodeProcess:
    """A ROS executable started as ``python -m <module> --ros-args ...`` with its output in a file."""

    def __init__(self, module: str, ros_args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.module = module
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *ros_args],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> bool:
        """True while running; fails the test with the process's output once it has exited."""
        if self.proc.poll() is not None:
            pytest.fail(f"{self.module} exited with {self.proc.returncode}:\n{self.log()}")
        return True

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """Waits for the process to exit; returns its exit code (raises on timeout)."""
        return self.proc.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int | None:
        """Sends ``sig``, then SIGTERM, then SIGKILL, each after ``timeout``; returns the exit code."""
        for s in (sig, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(s)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def launch_node(
    ros_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., NodeProcess]]:
    """Factory ``launch_node(module, *ros_args, name=...)``; every process is stopped at module end."""
    procs: list[NodeProcess] = []
    logs = tmp_path_factory.mktemp("ros_logs")

    def launch(module: str, *ros_args: str, name: str | None = None) -> NodeProcess:
        name = name or module.rsplit(".", 1)[-1]
        proc = NodeProcess(module, list(ros_args), ros_env, logs / f"{name}_{len(procs)}.log")
        procs.append(proc)
        return proc

    yield launch
    for proc in procs:
        proc.stop(timeout=5.0)


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
