"""``corr generate sim``: render MuJoCo tabletop episodes (ego + exo cameras)."""

from __future__ import annotations

import argparse
import time

from corr_core.errors import ConfigError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must look like 320x240, got {text!r}") from None
    return w, h


def run_sim(args: argparse.Namespace) -> int:
    from corr_core.data.sim import generate_dataset

    t0 = time.time()
    infos = generate_dataset(args.out, seed=args.seed, num_episodes=args.episodes, num_frames=args.frames,
                             num_objects=args.objects, num_exo=args.exo, size=_size(args.size), bag=not args.no_bag)
    dt = time.time() - t0
    frames = sum(i.num_frames * len(i.cameras) for i in infos)
    for info in infos:
        print(f"{info.name}: seed {info.seed}, cameras {', '.join(info.cameras)}, {info.num_frames} frames"
              + (f", bag {info.bag_path}" if info.bag_path else ""))
    print(f"wrote {len(infos)} episode(s) to {args.out} ({frames} camera frames, {frames / dt:.1f} frames/s)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate data (MuJoCo tabletop scenes)")
    gen = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    s = gen.add_parser("sim", help="render ego/exo tabletop episodes: DAVIS layout per camera + MCAP bag",
                       description="Deterministic from --seed; episode i uses seed+i.")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0, help="seed of the first episode [0]")
    s.add_argument("--episodes", type=int, default=1, help="number of episodes [1]")
    s.add_argument("--frames", type=int, default=40, help="frames per episode [40]")
    s.add_argument("--objects", type=int, default=5, help="objects on the table, one of them a look-alike [5]")
    s.add_argument("--exo", type=int, default=1, help="static exocentric cameras [1]")
    s.add_argument("--size", default="320x240", help="image size WxH [320x240]")
    s.add_argument("--no-bag", action="store_true", help="skip the rosbag2 (MCAP) output")
    s.set_defaults(func=run_sim)
