"""``corr generate sim``: render MuJoCo tabletop episodes (moving ego camera + static exo cameras)."""

from __future__ import annotations

import argparse
import time

from corr_core.errors import ConfigError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must look like 320x240 (W x H), got {text!r}") from None
    return w, h


def run_sim(args: argparse.Namespace) -> int:
    """Renders and writes the episodes; prints one line per episode and a summary."""
    from corr_core.data.sim import generate_dataset

    size = _size(args.size)
    t0 = time.perf_counter()
    infos = generate_dataset(
        args.out,
        seed=args.seed,
        num_episodes=args.episodes,
        num_frames=args.frames,
        num_objects=args.objects,
        num_exo=args.exo,
        size=size,
        bag=not args.no_bag,
        num_lookalikes=args.lookalikes,
        overwrite=args.overwrite,
        hidden_per_camera=args.hidden_per_camera,
    )
    total_s = time.perf_counter() - t0
    for info in infos:
        print(
            f"{info.name}: seed {info.seed}, cameras {', '.join(info.cameras)}, {info.num_frames} frames, "
            f"rendered at {info.frames_per_s:.1f} camera frames/s; meta {info.meta_path}"
            + (f"; bag {info.bag_path}" if info.bag_path else "")
        )
    frames = sum(i.num_frames * len(i.cameras) for i in infos)
    render_s = sum(i.render_s for i in infos)
    print(
        f"wrote {len(infos)} episode(s), {frames} camera frames at {size[0]}x{size[1]} to {args.out} in "
        f"{total_s:.1f} s (rendering {frames / max(render_s, 1e-9):.1f} camera frames/s, "
        f"{1000 * render_s / max(frames, 1):.1f} ms each)"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``corr generate`` and its ``sim`` source."""
    p = sub.add_parser(
        "generate",
        help="generate training/evaluation data (simulated tabletop scenes)",
        description="Generate data. Sources: sim (MuJoCo tabletop episodes).",
    )
    gen = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    s = gen.add_parser(
        "sim",
        help="render ego/exo tabletop episodes: DAVIS layout per camera, depth, metadata, MCAP bag",
        description="Render MuJoCo tabletop episodes: objects with look-alikes, a robot arm that pushes and "
        "picks them, a moving egocentric camera 'ego' and static cameras 'exo1'... Writes "
        "<out>/<cam>/{JPEGImages,Annotations}/<H>p/<episode>/, <out>/<cam>/Depth/<episode>/ "
        "(uint16 mm), <out>/meta/<episode>.json and <out>/bags/<episode>/ (rosbag2 MCAP). "
        "Deterministic: episode i uses seed SEED+i. An episode already in OUT is written again "
        "when its settings are the same, refused when they differ (or when it has no metadata), "
        "and replaced whole with --overwrite; one episode never mixes two runs.",
    )
    s.add_argument("--out", required=True, help="output folder (created; other episodes in it are kept)")
    s.add_argument("--seed", type=int, default=0, help="seed of the first episode [0]")
    s.add_argument("--episodes", type=int, default=1, help="number of episodes [1]")
    s.add_argument("--frames", type=int, default=40, help="frames per episode and camera, at 10 Hz [40]")
    s.add_argument("--objects", type=int, default=5, help="objects on the table, look-alikes included [5]")
    s.add_argument(
        "--lookalikes",
        type=int,
        default=None,
        help="objects that copy another's shape, size and texture [one per 4 objects, >= 1 from 3]",
    )
    s.add_argument("--exo", type=int, default=1, help="static exocentric cameras [1]")
    s.add_argument(
        "--hidden-per-camera",
        type=int,
        default=0,
        help="objects each camera does not see (the others do): cross-view existence tests [0]",
    )
    s.add_argument("--size", default="320x240", help="image size WxH [320x240]")
    s.add_argument("--no-bag", action="store_true", help="skip the rosbag2 (MCAP) output")
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace episodes of the same names whole (frames, depth, metadata, bag), whatever their settings",
    )
    s.set_defaults(func=run_sim)
