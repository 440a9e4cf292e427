"""``corr demo``: the embedded default, end to end over real ROS 2 topics.

1. renders a short two-camera MuJoCo episode (held-out seed) as DAVIS folders + an MCAP bag;
2. takes the FC checkpoint shipped with the package (or ``--checkpoint``; trains a quick one from
   ``training/fc_cpu.yaml`` when none is shipped);
3. starts ``corr_node``, ``corr_recorder`` and ``corr_player`` as separate processes on a private
   ROS domain: the player plays the bag (lockstep with the node's labels), the recorder writes the
   node's ``<cam>/labels`` and ``<cam>/overlay`` to an MCAP bag;
4. reads the recorded bag back, scores every camera with the DAVIS metrics, writes overlay images
   and ``metrics.json``, and prints J&F per camera and the frame rate.

With ``--crossview`` the episode is played a second time with masks on ego only: corr_node's
cross-view mode (the shipped PCC model, or ``--crossview PATH``) gives exo1 the same ids, and exo1's
J&F is printed next to the hand-anchored figure of the first run. ``--geometry`` plays it once more
with a camera rig: every camera moving, its pose and the ego depth from the bag (``/<cam>/pose``,
``/<cam>/depth_registered/image_rect``, which the player publishes), as an RGB-D head camera and a
calibrated exo camera would give them.

A plugin of the ``corr`` command (entry point group ``corr.commands``, see setup.py); also runs as
``python -m corr_ros.demo [options]``. The processes are started with :mod:`corr_ros.launcher`
(the launcher the tests use); this module imports neither rclpy nor torch at import time, so
``corr --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from corr_core.errors import CorrError, DataError
from corr_core.topics import DEPTH

log = logging.getLogger("corr.demo")

DEMO_SEED = 7  # held out: training recipes render sim episodes from seed 1000 up
CAMERAS = ("ego", "exo1")
SEQUENCE = "demo"


def find_resource(*parts: str) -> Path | None:
    """A file of the package's share folder: the source tree, or ``<prefix>/share/corr``."""
    for base in (Path(__file__).resolve().parents[1], Path(sys.prefix) / "share" / "corr"):
        path = base.joinpath(*parts)
        if path.exists():
            return path
    return None


def ensure_checkpoint(checkpoint: str | None, out: Path, train_iters: int) -> Path:
    """The checkpoint to serve: given, shipped, or trained now (a few minutes on a CPU)."""
    from corr_core.api import packaged_checkpoint

    if checkpoint:
        return Path(checkpoint)
    shipped = packaged_checkpoint()
    if shipped is not None:
        return shipped
    recipe = find_resource("training", "fc_cpu.yaml")
    if recipe is None:
        raise CorrError("no checkpoint is shipped and training/fc_cpu.yaml is not found; pass --checkpoint")
    from corr_core.commands.train import train_from_config
    from corr_core.config import load_config

    log.info("no shipped checkpoint: training FC for %d iterations with %s", train_iters, recipe)
    cfg = load_config(recipe, [f"train.iters={train_iters}"])
    return train_from_config(cfg, out / "train", recipe)


def crossview_checkpoint(value: str | None) -> Path | None:
    """``--crossview``: None (off), the shipped PCC model (``shipped``) or a user's checkpoint path.

    Raises:
        CorrError: the shipped model is missing, or the given file does not exist.
    """
    if value is None:
        return None
    if value == "shipped":
        from corr_core.crossview import SHIPPED_PCC

        shipped = find_resource("corr_core", "assets", "checkpoints", f"{SHIPPED_PCC}.safetensors")
        if shipped is None:
            raise CorrError(f"--crossview: the PCC model {SHIPPED_PCC}.safetensors is not shipped with this "
                            "install; pass --crossview PATH (e.g. runs/pcc_cpu/iter_2/model.safetensors)")
        return shipped
    path = Path(value)
    if not path.is_file():
        raise CorrError(f"--crossview: checkpoint {path} does not exist")
    return path


def play_through_node(
    episode_bag: Path,
    masks: list[Path],
    checkpoint: Path,
    out: Path,
    num_frames: int,
    timeout: float,
    input_scale: float = 1.0,
    crossview: Path | None = None,
    rig: Path | None = None,
) -> dict[str, Any]:
    """Runs player -> corr_node -> recorder; returns timing; the outputs land in ``out/outputs``.

    With ``crossview`` (a PCC checkpoint) only the first camera's mask is given (the node's
    ``initial_masks``; the player publishes none) and corr_node's cross-view mode finds its objects
    in the other cameras; with ``rig`` (a camera rig file) its matches use the cameras' poses and
    the anchor's depth.

    Raises:
        CorrError: a process exited early or timed out (with the tail of its log).
    """
    from corr_ros.launcher import RosProcess, isolated_env, wait_for_file

    env = isolated_env()
    node_cfg = find_resource("config", "corr_node.yaml")
    cams = "[" + ",".join(CAMERAS) + "]"
    node_args = (["--params-file", str(node_cfg)] if node_cfg else []) + [
        "-p", f"cameras:={cams}", "-p", f"checkpoint:={checkpoint}", "-p", f"input_scale:={float(input_scale)}",
        # lockstep playback must lose nothing: 230 KB frames (and 150 KB depth) sent best-effort were
        # now and then lost on these 2 busy cores, costing a labels_timeout; a robot keeps sensor-data QoS
        "-p", "qos.input.reliability:=reliable"]
    if crossview is not None:
        node_args += ["-p", f"crossview_checkpoint:={crossview}", "-p", f"anchor_camera:={CAMERAS[0]}",
                      "-p", "initial_masks:=[" + ",".join([f"'{masks[0]}'"] + ["''"] * (len(CAMERAS) - 1)) + "]"]
        if rig is not None:
            node_args += ["-p", f"crossview_rig:={rig}", "-p", "crossview_depth:=true"]
    topics = [f"{c}/{kind}:sensor_msgs/msg/Image" for c in CAMERAS for kind in ("labels", "overlay")]
    logs = out / "logs"
    ready = logs / "recorder.ready"
    rec_args = ["-p", f"output:={out / 'outputs'}", "-p", f"max_messages:={num_frames}",
                "-p", f"ready_file:={ready}",
                "-p", "topics:=[" + ",".join(f"'{t}'" for t in topics) + "]"]
    play_args = ["-p", f"bag:={episode_bag}", "-p", f"cameras:={cams}", "-p", "wait_for_labels:=true",
                 "-p", "masks:=[" + ",".join(f"'{m}'" for m in masks) + "]", "-p", "rate:=30.0",
                 "-p", "wait_for_subscribers:=60.0", "-p", "labels_timeout:=60.0"]
    if crossview is not None:
        play_args += ["-p", "publish_masks:=false"]
    if rig is not None:  # the first frame's geometry reaches the node like the later ones' (no discovery race)
        waits = [f"{c}/{t}" for c in CAMERAS for t in ("camera_info", "pose")] + [f"{CAMERAS[0]}/{DEPTH}"]
        play_args += ["-p", "wait_for_topics:=[" + ",".join(f"'{t}'" for t in waits) + "]"]
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[RosProcess] = []
    try:
        procs.append(node := RosProcess.start("corr_ros.nodes.corr_node", node_args, env, logs / "corr_node.log"))
        procs.append(rec := RosProcess.start("corr_ros.nodes.recorder", rec_args, env, logs / "recorder.log"))
        # the player starts only once the recorder's readers have matched the node's writers:
        # otherwise the first labels of a camera can be published before the recorder hears them
        wait_for_file(ready, timeout, [node, rec], "the recorder to match the node's output topics")
        t0 = time.time()
        procs.append(player := RosProcess.start("corr_ros.nodes.player", play_args, env, logs / "player.log"))
        code = player.wait(timeout)
        wall = time.time() - t0
        if code != 0:
            raise CorrError(f"corr_player {'timed out' if code is None else f'exited with {code}'}; "
                            f"{player.describe_log()}\n--- corr_node: {node.describe_log()}")
        if rec.wait(30.0) is None:
            log.warning("recorder did not see every message; stopping it (what it has is kept)")
        return {"wall_s": wall}
    finally:
        for p in reversed(procs):
            p.stop(timeout=15.0)


def write_rig(path: Path) -> Path:
    """The demo's camera rig file: every sim camera moving (its pose on ``<cam>/pose`` in the
    sim's ``world`` frame, from the bag)."""
    import yaml

    from corr_core.data.sim.generate import WORLD_FRAME

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"frame": WORLD_FRAME, "cameras": {c: {"moving": True} for c in CAMERAS}}))
    return path


def run(args: argparse.Namespace) -> int:
    """Runs the demo (see the module docstring); returns the exit code."""
    from corr_core.data.bag import read_synced
    from corr_core.data.sim import generate_episode
    from corr_core.evaluation.recorded import read_recorded_images, score_cameras, write_overlays
    from corr_core.evaluation.vos import json_ready

    crossview = crossview_checkpoint(args.crossview)
    if args.geometry and crossview is None:
        raise CorrError("--geometry needs --crossview (it plays the cross-view run with the cameras' poses)")
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t_start = time.time()
    log.info("rendering a %d-frame two-camera episode (seed %d)", args.frames, args.seed)
    sim_root = out / "sim"
    w, h = (int(v) for v in args.size.lower().split("x"))
    generate_episode(sim_root, seed=args.seed, num_frames=args.frames, num_objects=args.objects,
                     num_exo=len(CAMERAS) - 1, size=(w, h), name=SEQUENCE, bag=True)
    episode_bag = sim_root / "bags" / SEQUENCE
    with read_synced(episode_bag, {c: f"/{c}/image_raw" for c in CAMERAS}) as reader:
        stamps = [s.stamp_ns for s in reader]
    if len(stamps) != args.frames:
        raise DataError(f"{episode_bag}: expected {args.frames} synchronised frames, read {len(stamps)}")
    res = next((sim_root / CAMERAS[0] / "Annotations").iterdir()).name
    masks = [sim_root / c / "Annotations" / res / SEQUENCE / "00000.png" for c in CAMERAS]

    checkpoint = ensure_checkpoint(args.checkpoint, out, args.train_iters)
    log.info("serving %s through corr_node", checkpoint)
    timing = play_through_node(episode_bag, masks, checkpoint, out, len(stamps), args.timeout, args.input_scale)
    outputs = read_recorded_images(out / "outputs")
    per_cam = score_cameras(outputs["labels"], sim_root, SEQUENCE, stamps, CAMERAS)
    write_overlays({c: outputs["overlay"].get(c, {}) for c in CAMERAS}, stamps, out / "overlays")
    xv_cam: dict[str, Any] = {}
    if crossview is not None:
        log.info("cross-view run: masks on %s only, %s through corr_node's cross-view mode", CAMERAS[0], crossview)
        xv_out = out / "crossview"
        play_through_node(episode_bag, masks, checkpoint, xv_out, len(stamps), args.timeout, args.input_scale,
                          crossview=crossview)
        xv_outputs = read_recorded_images(xv_out / "outputs")
        xv_cam = score_cameras(xv_outputs["labels"], sim_root, SEQUENCE, stamps, CAMERAS)
        write_overlays({c: xv_outputs["overlay"].get(c, {}) for c in CAMERAS}, stamps, xv_out / "overlays")
    geo_cam: dict[str, Any] = {}
    if crossview is not None and args.geometry:
        log.info("cross-view run with the cameras' poses and the ego depth (camera rig)")
        geo_out = out / "crossview_geometry"
        rig = write_rig(geo_out / "rig.yaml")
        play_through_node(episode_bag, masks, checkpoint, geo_out, len(stamps), args.timeout, args.input_scale,
                          crossview=crossview, rig=rig)
        geo_outputs = read_recorded_images(geo_out / "outputs")
        geo_cam = score_cameras(geo_outputs["labels"], sim_root, SEQUENCE, stamps, CAMERAS)
        write_overlays({c: geo_outputs["overlay"].get(c, {}) for c in CAMERAS}, stamps, geo_out / "overlays")
    fps = len(stamps) / timing["wall_s"]
    metrics = {
        "episode": {"seed": args.seed, "frames": len(stamps), "size": [w, h], "objects": args.objects},
        "checkpoint": str(checkpoint),
        "input_scale": args.input_scale,
        "cameras": per_cam,
        "synchronised_sets_per_s": fps,
        "camera_frames_per_s": fps * len(CAMERAS),
    }
    if crossview is not None:
        metrics["crossview"] = {"checkpoint": str(crossview), "anchor_camera": CAMERAS[0], "cameras": xv_cam}
        if geo_cam:
            metrics["crossview"]["with_geometry"] = {"rig": "every camera moving (poses from the bag), ego depth",
                                                     "cameras": geo_cam}
    metrics["total_s"] = time.time() - t_start
    (out / "metrics.json").write_text(json.dumps(json_ready(metrics), indent=2))
    print(f"\ncorr demo: {len(stamps)} frames x {len(CAMERAS)} cameras through corr_node "
          f"({metrics['synchronised_sets_per_s']:.2f} synchronised sets/s, "
          f"{metrics['camera_frames_per_s']:.2f} camera frames/s end to end)")
    for cam, m in per_cam.items():
        print(f"  {cam:6s} J&F-Mean {m['J&F-Mean']:.3f}   J-Mean {m['J-Mean']:.3f}   F-Mean {m['F-Mean']:.3f}"
              f"   objects {len(m['objects'])}")
    for cam in CAMERAS[1:] if xv_cam else ():
        print(f"  {cam:6s} J&F-Mean {xv_cam[cam]['J&F-Mean']:.3f} with masks on {CAMERAS[0]} only (cross-view, "
              f"{crossview.name}) vs {per_cam[cam]['J&F-Mean']:.3f} hand-anchored")
        if geo_cam:
            print(f"  {cam:6s} J&F-Mean {geo_cam[cam]['J&F-Mean']:.3f} with masks on {CAMERAS[0]} only and the cameras' "
                  "poses + ego depth (camera rig)")
    print(f"outputs: {out / 'outputs'} (MCAP), overlays: {out / 'overlays'}, metrics: {out / 'metrics.json'}")
    print(f"total {metrics['total_s']:.0f} s")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The demo's options (shared by ``corr demo`` and ``python -m corr_ros.demo``)."""
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
    p.add_argument("--crossview", nargs="?", const="shipped", default=None, metavar="PCC_CHECKPOINT",
                   help="also play the episode with masks on ego only and let corr_node's cross-view mode find "
                        "the objects in exo1 (the shipped PCC model, or PCC_CHECKPOINT); prints exo1's J&F "
                        "next to the hand-anchored one")
    p.add_argument("--geometry", action="store_true",
                   help="with --crossview: also play it with a camera rig (the cameras' poses and the ego depth "
                        "from the bag), as a calibrated robot would, and print exo1's J&F with it")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for playing the episode [900]")
    p.set_defaults(func=run)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``corr demo`` (entry point ``demo = corr_ros.demo:add_parser``, group ``corr.commands``)."""
    p = sub.add_parser("demo", help="sim episode -> live corr_node over ROS 2 -> recorded bag -> J&F per camera",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)


def main(argv: list[str] | None = None) -> int:
    """``python -m corr_ros.demo [options]``: the same as ``corr demo [options]``."""
    parser = argparse.ArgumentParser(prog="corr demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except CorrError as exc:
        print(f"corr demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("corr demo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
