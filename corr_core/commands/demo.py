"""``corr demo``: the embedded default, end to end over real ROS 2 topics.

1. renders a short two-camera MuJoCo episode (held-out seed) as DAVIS folders + an MCAP bag;
2. takes the FC checkpoint shipped with the package (or ``--checkpoint``; trains a quick one from
   ``training/fc_cpu.yaml`` when none is shipped);
3. starts ``corr_node``, ``corr_recorder`` and ``corr_player`` as separate processes on a private
   ROS domain: the player plays the bag (lockstep with the node's labels), the recorder writes the
   node's ``<cam>/labels`` and ``<cam>/overlay`` to an MCAP bag;
4. reads the recorded bag back, scores every camera with the DAVIS metrics, writes overlay images
   and ``metrics.json``, and prints J&F per camera and the frame rate.

This module starts the ROS executables as subprocesses; it imports no ROS code itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from corr_core.errors import CorrError, DataError

log = logging.getLogger("corr.demo")

DEMO_SEED = 7  # held out: training recipes render sim episodes from seed 1000 up
CAMERAS = ("ego", "exo1")


def _find_resource(*parts: str) -> Path | None:
    """A file of the package's share folder: the source tree, or ``<prefix>/share/corr``."""
    for base in (Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / "corr"):
        path = base.joinpath(*parts)
        if path.exists():
            return path
    return None


def _ros_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 200)))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Proc:
    """A ROS executable in its own process, its output in a log file."""

    def __init__(self, module: str, ros_args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.log_path = module.rsplit(".", 1)[-1], log_path
        self._fh = open(log_path, "w")
        self.popen = subprocess.Popen([sys.executable, "-m", module, "--ros-args", *ros_args],
                                      env=env, stdout=self._fh, stderr=subprocess.STDOUT)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            if self.wait(timeout) is None:
                self.popen.kill()
                self.popen.wait()
        self._fh.close()
        return self.popen.returncode

    def tail(self, n: int = 15) -> str:
        self._fh.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def _wait_for_file(path: Path, timeout: float, procs: list[_Proc], what: str) -> None:
    """Waits until ``path`` exists; fails early, with the process's last log lines, if one exits."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        for p in procs:
            if p.popen.poll() is not None:
                raise CorrError(f"{p.name} exited with {p.popen.returncode} while waiting for {what}; "
                                f"last lines of {p.log_path}:\n{p.tail()}")
        if time.monotonic() > deadline:
            raise CorrError(f"timed out after {timeout:.0f} s waiting for {what}; last lines:\n"
                            + "\n".join(f"--- {p.name}:\n{p.tail()}" for p in procs))
        time.sleep(0.05)


def ensure_checkpoint(checkpoint: str | None, out: Path, train_iters: int) -> Path:
    """The checkpoint to serve: given, shipped, or trained now (a few minutes on a CPU)."""
    from corr_core.api import packaged_checkpoint

    if checkpoint:
        return Path(checkpoint)
    shipped = packaged_checkpoint()
    if shipped is not None:
        return shipped
    recipe = _find_resource("training", "fc_cpu.yaml")
    if recipe is None:
        raise CorrError("no checkpoint is shipped and training/fc_cpu.yaml is not found; pass --checkpoint")
    from corr_core.commands.train import train_from_config
    from corr_core.config import load_config

    log.info("no shipped checkpoint: training FC for %d iterations with %s", train_iters, recipe)
    cfg = load_config(recipe, [f"train.iters={train_iters}"])
    return train_from_config(cfg, out / "train", recipe)


def play_through_node(episode_bag: Path, masks: list[Path], checkpoint: Path, out: Path,
                      num_frames: int, timeout: float, input_scale: float = 1.0) -> dict[str, Any]:
    """Runs player -> corr_node -> recorder; returns timing; the outputs land in ``out/outputs``."""
    env = _ros_env()
    node_cfg = _find_resource("config", "corr_node.yaml")
    cams = "[" + ",".join(CAMERAS) + "]"
    node_args = (["--params-file", str(node_cfg)] if node_cfg else []) + [
        "-p", f"cameras:={cams}", "-p", f"checkpoint:={checkpoint}", "-p", f"input_scale:={float(input_scale)}"]
    topics = [f"{c}/{kind}:sensor_msgs/msg/Image" for c in CAMERAS for kind in ("labels", "overlay")]
    ready = out / "logs" / "recorder.ready"
    rec_args = ["-p", f"output:={out / 'outputs'}", "-p", f"max_messages:={num_frames}",
                "-p", f"ready_file:={ready}",
                "-p", "topics:=[" + ",".join(f"'{t}'" for t in topics) + "]"]
    play_args = ["-p", f"bag:={episode_bag}", "-p", f"cameras:={cams}", "-p", "wait_for_labels:=true",
                 "-p", "masks:=[" + ",".join(f"'{m}'" for m in masks) + "]", "-p", "rate:=30.0",
                 "-p", "wait_for_subscribers:=60.0", "-p", "labels_timeout:=60.0"]
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        procs.append(node := _Proc("corr_ros.nodes.corr_node", node_args, env, logs / "corr_node.log"))
        procs.append(rec := _Proc("corr_ros.nodes.recorder", rec_args, env, logs / "recorder.log"))
        # the player starts only once the recorder's readers have matched the node's writers:
        # otherwise the first labels of a camera can be published before the recorder hears them
        _wait_for_file(ready, timeout, [node, rec], "the recorder to match the node's output topics")
        t0 = time.time()
        procs.append(player := _Proc("corr_ros.nodes.player", play_args, env, logs / "player.log"))
        code = player.wait(timeout)
        wall = time.time() - t0
        if code != 0:
            raise CorrError(f"corr_player {'timed out' if code is None else f'exited with {code}'}; "
                            f"last lines of {player.log_path}:\n{player.tail()}\n--- corr_node:\n{node.tail()}")
        if rec.wait(30.0) is None:
            log.warning("recorder did not see every message; stopping it (what it has is kept)")
        return {"wall_s": wall}
    finally:
        for p in reversed(procs):
            p.stop()


def read_outputs(bag: Path) -> dict[str, dict[str, dict[int, np.ndarray]]]:
    """``{kind: {camera: {stamp_ns: array}}}`` for the recorded labels and overlays."""
    from rosbags.rosbag2 import Reader

    from corr_core.data.bag import TYPESTORE, decode_image, header_stamp_ns

    out: dict[str, dict[str, dict[int, np.ndarray]]] = {"labels": {}, "overlay": {}}
    with Reader(bag) as reader:
        for conn, _, raw in reader.messages():
            cam, kind = conn.topic.strip("/").rsplit("/", 1)
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            out[kind].setdefault(cam, {})[header_stamp_ns(msg.header)] = decode_image(msg, conn.topic)
    return out


def score(outputs: dict[str, dict[str, dict[int, np.ndarray]]], sim_root: Path, name: str,
          stamps: list[int], out: Path) -> dict[str, Any]:
    """DAVIS J&F per camera of the recorded labels; writes overlay images."""
    import cv2

    from corr_core.data.davis import DavisDataset
    from corr_core.metrics.davis import evaluate_sequence

    per_cam: dict[str, Any] = {}
    for cam in CAMERAS:
        res_dir = next((sim_root / cam / "JPEGImages").iterdir()).name
        ds = DavisDataset(sim_root / cam, resolution=res_dir)
        labels = outputs["labels"].get(cam, {})
        missing = [i for i, s in enumerate(stamps) if s not in labels]
        gt = np.stack([ds.read_annotation(name, i) for i in range(len(stamps))])
        pred = np.stack([labels.get(s, np.zeros_like(gt[0])) for s in stamps]).astype(np.int64)
        result = evaluate_sequence(gt, pred, name=f"{cam}/{name}", missing_objects="empty")
        odir = out / "overlays" / cam
        odir.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(stamps):
            if s in outputs["overlay"].get(cam, {}):
                cv2.imwrite(str(odir / f"{i:05d}.jpg"), cv2.cvtColor(outputs["overlay"][cam][s], cv2.COLOR_RGB2BGR))
        objs = result["objects"]
        j = float(np.mean([o["J-Mean"] for o in objs.values()]))
        f = float(np.mean([o["F-Mean"] for o in objs.values()]))
        per_cam[cam] = {
            "J&F-Mean": (j + f) / 2, "J-Mean": j, "F-Mean": f, "frames": len(stamps),
            "frames_without_labels": missing,
            "objects": {str(k): {m: float(o[m]) for m in ("J-Mean", "J-Recall", "J-Decay", "F-Mean",
                                                          "F-Recall", "F-Decay")} for k, o in objs.items()},
        }
    return per_cam


def run(args: argparse.Namespace) -> int:
    from corr_core.data.bag import read_synced
    from corr_core.data.sim import generate_episode
    from corr_core.evaluation.vos import json_ready

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t_start = time.time()
    name = "demo"
    log.info("rendering a %d-frame two-camera episode (seed %d)", args.frames, args.seed)
    sim_root = out / "sim"
    w, h = (int(v) for v in args.size.lower().split("x"))
    generate_episode(sim_root, seed=args.seed, num_frames=args.frames, num_objects=args.objects,
                     num_exo=len(CAMERAS) - 1, size=(w, h), name=name, bag=True)
    episode_bag = sim_root / "bags" / name
    with read_synced(episode_bag, {c: f"/{c}/image_raw" for c in CAMERAS}) as reader:
        stamps = [s.stamp_ns for s in reader]
    if len(stamps) != args.frames:
        raise DataError(f"{episode_bag}: expected {args.frames} synchronised frames, read {len(stamps)}")
    res = next((sim_root / CAMERAS[0] / "Annotations").iterdir()).name
    masks = [sim_root / c / "Annotations" / res / name / "00000.png" for c in CAMERAS]

    checkpoint = ensure_checkpoint(args.checkpoint, out, args.train_iters)
    log.info("serving %s through corr_node", checkpoint)
    timing = play_through_node(episode_bag, masks, checkpoint, out, len(stamps), args.timeout, args.input_scale)
    outputs = read_outputs(out / "outputs")
    per_cam = score(outputs, sim_root, name, stamps, out)
    fps = len(stamps) / timing["wall_s"]
    metrics = {
        "episode": {"seed": args.seed, "frames": len(stamps), "size": [w, h], "objects": args.objects},
        "checkpoint": str(checkpoint),
        "input_scale": args.input_scale,
        "cameras": per_cam,
        "synchronised_sets_per_s": fps,
        "camera_frames_per_s": fps * len(CAMERAS),
        "total_s": time.time() - t_start,
    }
    (out / "metrics.json").write_text(json.dumps(json_ready(metrics), indent=2))
    print(f"\ncorr demo: {len(stamps)} frames x {len(CAMERAS)} cameras through corr_node "
          f"({metrics['synchronised_sets_per_s']:.2f} synchronised sets/s, "
          f"{metrics['camera_frames_per_s']:.2f} camera frames/s end to end)")
    for cam, m in per_cam.items():
        print(f"  {cam:6s} J&F-Mean {m['J&F-Mean']:.3f}   J-Mean {m['J-Mean']:.3f}   F-Mean {m['F-Mean']:.3f}"
              f"   objects {len(m['objects'])}")
    print(f"outputs: {out / 'outputs'} (MCAP), overlays: {out / 'overlays'}, metrics: {out / 'metrics.json'}")
    print(f"total {metrics['total_s']:.0f} s")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="sim episode -> live corr_node over ROS 2 -> recorded bag -> J&F per camera",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="output folder (replaced) [runs/demo]")
    p.add_argument("--checkpoint", help="checkpoint to serve (default: the one shipped with the package)")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help=f"episode seed (held out from training) [{DEMO_SEED}]")
    p.add_argument("--frames", type=int, default=30, help="frames per camera [30]")
    p.add_argument("--objects", type=int, default=5, help="objects on the table [5]")
    p.add_argument("--size", default="320x240", help="image size WxH [320x240]")
    p.add_argument("--input-scale", type=float, default=2.0,
                   help="corr_node's input_scale: the sim objects are a few feature cells across at "
                        "320x240, so the demo tracks at 2x (about 4x the compute of 1) [2.0]")
    p.add_argument("--train-iters", type=int, default=200,
                   help="iterations of the quick training run used when no checkpoint is shipped [200]")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for playing the episode [900]")
    p.set_defaults(func=run)
