"""corr_ros.launcher, the one way the demo and the tests start ROS executables, on stand-in modules.

The stand-ins are tiny Python modules (no ROS): they write a ready file, print their arguments,
and wait for a signal, or ignore SIGINT, or exit at once.
"""

from __future__ import annotations

import signal

import pytest

from corr_ros.launcher import ProcessError, RosProcess, isolated_env, wait_for_file, wait_until

# SIGINT is blocked before the ready file is written and taken with sigwait: with write-then-pause(),
# a SIGINT arriving between the two left the process in pause() for good (seen once in CI under load)
STAND_IN = '''
import os, pathlib, signal, sys
args = sys.argv[1:]
print("args", args, flush=True)
mode = args[args.index("--ros-args") + 1]
if mode == "exit":
    print("giving up", flush=True)
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pathlib.Path(args[-1]).write_text("ready")
    signal.pause()  # only SIGTERM (default action) ends it
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
pathlib.Path(args[-1]).write_text("ready")
signal.sigwait({signal.SIGINT})
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
os.kill(os.getpid(), signal.SIGINT)  # end by the signal itself, as a real node does
'''


@pytest.fixture
def env(tmp_path):
    (tmp_path / "stand_in_node.py").write_text(STAND_IN)
    return isolated_env({"PATH": "/usr/bin:/bin"}, pythonpath=[str(tmp_path)])


def test_isolated_env_keeps_processes_private():
    env = isolated_env({"ROS_LOCALHOST_ONLY": "1", "PYTHONPATH": "/x"}, domain_id=42, pythonpath=["/src"])
    assert env["ROS_DOMAIN_ID"] == "42" and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert "ROS_LOCALHOST_ONLY" not in env and env["PYTHONPATH"].split(":") == ["/src", "/x"]
    assert 1 <= int(isolated_env({})["ROS_DOMAIN_ID"]) <= 200
    assert isolated_env({"ROS_DOMAIN_ID": "7"})["ROS_DOMAIN_ID"] == "7"


def test_start_wait_for_a_ready_file_and_stop_with_sigint(tmp_path, env):
    ready = tmp_path / "ready"
    proc = RosProcess.start("stand_in_node", ["plain", str(ready)], env, tmp_path / "logs" / "node.log")
    wait_for_file(ready, 60, [proc], "the stand-in to be ready")
    assert proc.alive() and proc.check_alive()
    assert proc.wait(0) is None
    assert proc.stop(timeout=10) == -signal.SIGINT  # ended by SIGINT itself, no escalation
    assert not proc.alive()
    assert "args ['--ros-args', 'plain'" in proc.log()


def test_stop_escalates_when_sigint_is_ignored(tmp_path, env):
    ready = tmp_path / "ready"
    proc = RosProcess.start("stand_in_node", ["stubborn", str(ready)], env, tmp_path / "node.log")
    wait_for_file(ready, 60, [proc], "the stand-in to be ready")
    assert proc.stop(timeout=1.0) == -signal.SIGTERM


def test_an_early_exit_fails_the_wait_with_the_log(tmp_path, env):
    proc = RosProcess.start("stand_in_node", ["exit", str(tmp_path / "never")], env, tmp_path / "node.log")
    with pytest.raises(ProcessError, match=r"(?s)stand_in_node exited with 3 while waiting for it.*giving up"):
        wait_until(lambda: False, 60, [proc], "it")
    with pytest.raises(ProcessError, match="exited with 3"):
        proc.check_alive()
    assert proc.stop() == 3


def test_a_timeout_names_what_was_awaited(tmp_path, env):
    ready = tmp_path / "ready"
    proc = RosProcess.start("stand_in_node", ["plain", str(ready)], env, tmp_path / "node.log")
    try:
        wait_for_file(ready, 60, [proc], "the stand-in to be ready")
        with pytest.raises(ProcessError, match=r"(?s)timed out after 0 s waiting for nothing.*--- stand_in_node"):
            wait_until(lambda: False, 0.0, [proc], "nothing")
    finally:
        proc.stop()
