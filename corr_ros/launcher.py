"""Starting the ROS executables as processes: one way, used by ``corr demo`` and by the tests.

Each executable runs as ``python -m <module> --ros-args ...`` in its own process, with its output
in a log file, in an isolated ROS environment (:func:`isolated_env`: a private domain id, discovery
limited to this machine). :func:`wait_until` waits for a condition (a ready file, a topic) and
fails early, with the last lines of every log, when a process exits; :meth:`RosProcess.stop` ends
a process with SIGINT, then SIGTERM, then SIGKILL.

``ros2 launch`` (``launch/corr.launch.py``) starts the same executables with the same parameter
files on a robot; ``launch`` itself is not installable from the ROS wheels, hence this module.
Nothing here imports rclpy: it only starts processes.

Example::

    env = isolated_env()
    node = RosProcess.start("corr_ros.nodes.corr_node", ["-p", "random_init:=true"], env, logs / "node.log")
    wait_until(lambda: ready.exists(), 60, [node], "the node to be ready")
    node.stop()
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from corr_core.errors import CorrError

__all__ = ["ProcessError", "RosProcess", "isolated_env", "wait_for_file", "wait_until"]

#: Environment of every ROS process started here, on top of the caller's.
ROS_SETTINGS = {
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    "RCUTILS_COLORIZED_OUTPUT": "0",
    "RCUTILS_LOGGING_BUFFERED_STREAM": "0",
    "PYTHONUNBUFFERED": "1",
}
POLL_S = 0.05


class ProcessError(CorrError):
    """A ROS process exited early, or a condition it should bring about did not hold in time."""


def isolated_env(
    base: Mapping[str, str] | None = None, domain_id: int | str | None = None, pythonpath: Sequence[str] = ()
) -> dict[str, str]:
    """Environment for ROS processes that see only each other.

    Args:
        base: environment to start from (default: this process's).
        domain_id: ``ROS_DOMAIN_ID``; None keeps the base's, or draws one in 1..200.
        pythonpath: folders put first on ``PYTHONPATH`` (e.g. a source checkout).

    Returns:
        The environment: discovery limited to localhost (``ROS_LOCALHOST_ONLY``, deprecated in
        Jazzy, removed), unbuffered uncoloured output.
    """
    env = dict(os.environ if base is None else base)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    elif not env.get("ROS_DOMAIN_ID"):
        env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 200))
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.update(ROS_SETTINGS)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), *filter(None, [env.get("PYTHONPATH")])])
    return env


class RosProcess:
    """One ROS executable, ``python -m <module> --ros-args <ros_args>``, its output in a log file.

    Use :meth:`start` to create one.
    """

    def __init__(self, module: str, popen: subprocess.Popen, log_path: Path, log_file: Any) -> None:
        self.module = module
        self.name = module.rsplit(".", 1)[-1]
        self.popen = popen
        self.log_path = log_path
        self._log_file = log_file

    @classmethod
    def start(
        cls,
        module: str,
        ros_args: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> RosProcess:
        """Starts ``module`` with ``ros_args`` (after ``--ros-args``); output goes to ``log_path``."""
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        popen = subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *map(str, ros_args)],
            cwd=cwd,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        return cls(module, popen, log_path, log_file)

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while running."""
        return self.popen.poll()

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def check_alive(self) -> bool:
        """True while running.

        Raises:
            ProcessError: once it has exited, with the tail of its log.
        """
        if self.popen.poll() is not None:
            raise ProcessError(f"{self.name} exited with {self.popen.returncode}; {self.describe_log()}")
        return True

    def log(self) -> str:
        """Everything the process wrote so far."""
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log().splitlines()[-lines:])

    def describe_log(self, lines: int = 15) -> str:
        """``"last lines of <log>:\\n..."``, for error messages."""
        return f"last lines of {self.log_path}:\n{self.tail(lines)}"

    def wait(self, timeout: float) -> int | None:
        """Waits for the process to exit; its exit code, or None if it still runs after ``timeout``."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int | None:
        """Sends ``sig``, then SIGTERM, then SIGKILL, each after ``timeout`` s; returns the exit code."""
        for s in (sig, signal.SIGTERM, signal.SIGKILL):
            if self.popen.poll() is not None:
                break
            self.popen.send_signal(s)
            if self.wait(timeout) is not None:
                break
        self.popen.wait()
        self._log_file.close()
        return self.popen.returncode


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    procs: Sequence[RosProcess],
    what: str,
    poll_s: float = POLL_S,
) -> Any:
    """Waits until ``condition()`` is truthy and returns its value.

    Raises:
        ProcessError: when one of ``procs`` exits first (with its log's tail), or on timeout
            (with every log's tail).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for proc in procs:
            if not proc.alive():
                raise ProcessError(
                    f"{proc.name} exited with {proc.returncode} while waiting for {what}; {proc.describe_log()}"
                )
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}: {p.describe_log()}" for p in procs)
            raise ProcessError(f"timed out after {timeout:.0f} s waiting for {what}" + (f"\n{tails}" if tails else ""))
        time.sleep(poll_s)


def wait_for_file(path: Path, timeout: float, procs: Sequence[RosProcess], what: str) -> None:
    """Waits until ``path`` exists (see :func:`wait_until`)."""
    wait_until(Path(path).exists, timeout, procs, what)
