"""``corr eval crossview``: cross-view object correspondence on simulated episodes.

Examples::

    corr eval crossview --sim runs/heldout_sim --pcc runs/pcc_cpu/iter_2/model --out runs/xv/pcc
    corr eval crossview --sim runs/heldout_sim --checkpoint corr_core/assets/checkpoints/fc_resnet18_s8 \\
        --out runs/xv/fc --calibrate runs/tune_sim
    corr eval crossview --merge runs/xv/pcc runs/xv/fc --out docs/crossview
    corr eval crossview --sim runs/heldout_sim --pcc runs/pcc_cpu/iter_2/model --tracks --out runs/xv_tracks

Every object visible in a source view is a query (its ground-truth mask); the prediction in the
target view is scored with the EgoExo4D metrics (IoU, location error, contour accuracy, balanced
accuracy of existence), with 95 % intervals over episodes, plus the look-alike test. Writes
``metrics.json``, ``table.md`` and side-by-side overlays (query | prediction | ground truth).

With ``--tracks`` the episodes are played as ``corr_node`` serves the cross-view mode instead: the
anchor camera's masks of frame 0 only, the other cameras matched and then tracked (the shipped FC
features, the node's propagation defaults), matched again when an object goes missing; each other
camera is scored with DAVIS J&F over the objects it shows
(:mod:`corr_core.evaluation.crossview_tracks`). The matcher decides existence with its
checkpoint's own thresholds, as in the node.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from corr_core.commands.common import add_overwrite_arg
from corr_core.errors import ConfigError, DataError
from corr_core.options import add_model_args, model_source


def _directions(text: str, cameras: list[str]) -> list[tuple[str, str]]:
    if text:
        out = []
        for part in text.split(","):
            a, sep, b = part.partition(":")
            if not sep or a not in cameras or b not in cameras or a == b:
                raise ConfigError(f"--directions: {part!r} is not SRC:TGT with two of the cameras {cameras}")
            out.append((a, b))
        return out
    exos = [c for c in cameras if c != "ego"]
    if "ego" not in cameras or not exos:
        raise ConfigError(f"cameras {cameras}: give --directions SRC:TGT,... (no ego and exo cameras)")
    return [d for exo in exos for d in (("ego", exo), (exo, "ego"))]


def _matcher(args: argparse.Namespace) -> tuple[Any, str]:
    from corr_core.proposals import build_proposer

    proposer = None
    if args.proposer != "none":
        kwargs = {"checkpoint": args.sam_checkpoint} if args.proposer == "sam" else {}
        if args.proposer == "oracle":
            raise ConfigError("--proposer oracle needs ground truth inside the matcher; use it with `corr pcc` "
                              "pseudo-labels, not here")
        proposer = build_proposer(args.proposer, **kwargs)
    if args.pcc is not None:
        from corr_core.crossview.matcher import CrossViewMatcher

        # a threshold calibrated here holds for the settings given or the matcher's defaults; without
        # --calibrate the checkpoint's stored threshold comes with the settings it was calibrated for
        given = {k: v for k, v in (("verify", args.verify), ("one_to_one", args.one_to_one)) if v is not None}
        return (CrossViewMatcher.from_checkpoint(args.pcc, args.device, stored=args.calibrate is None,
                                                 proposer=proposer, select=args.select,
                                                 epipolar_sigma=args.epipolar_sigma, **given),
                f"pcc:{args.pcc}")
    if proposer is None:
        raise ConfigError("the nearest-neighbour baselines need a proposer (--proposer graph or sam)")
    if args.colour_stats:
        from corr_core.crossview.baseline import ColourStatsMatcher

        return ColourStatsMatcher(proposer, epipolar_sigma=args.epipolar_sigma), "nn:colour statistics"
    from corr_core.api import load_feature_model
    from corr_core.crossview.baseline import FeatureMatcher

    src = model_source(args, what="or --pcc CKPT or --colour-stats")
    model, _ = load_feature_model(src.checkpoint, device=src.device, random_init_seed=src.random_init_seed)
    return FeatureMatcher(model, proposer, src.device, epipolar_sigma=args.epipolar_sigma), f"nn:{src.describe()}"


def run_crossview(args: argparse.Namespace) -> int:
    from corr_core.commands.common import check_output
    from corr_core.evaluation.crossview import SimPoses, calibrate_existence, evaluate_crossview, write_report
    from corr_core.methods.pcc.scenes import sim_scenes

    out = Path(args.out)
    if args.merge:
        merged: dict[str, Any] = {}
        for run in args.merge:
            path = Path(run) / "metrics.json" if Path(run).is_dir() else Path(run)
            if not path.is_file():
                raise DataError(f"--merge: no metrics.json in {run}")
            merged.update(json.loads(path.read_text()))
        check_output(out, args.overwrite)
        print(write_report(merged, out))
        return 0
    if args.sim is None:
        raise ConfigError("give --sim FOLDER (a `corr generate sim` output) or --merge RUN ...")
    check_output(out, args.overwrite)
    scenes = sim_scenes(args.sim, resolution=args.resolution, episodes=args.episodes)
    if args.tracks:
        return _run_tracks(args, scenes, out)
    directions = _directions(args.directions, scenes[0].cameras)
    matcher, name = _matcher(args)
    settings: dict[str, Any] = {"sim": str(args.sim), "every": args.every, "min_pixels": args.min_pixels,
                                "proposer": args.proposer, "directions": [f"{a}->{b}" for a, b in directions]}
    poses = None
    if args.geometry:
        if args.pose_error is not None and len(args.pose_error) != 2:
            raise ConfigError(f"--pose-error takes DEGREES METRES, got {args.pose_error}")
        poses = SimPoses(*(args.pose_error or (0.0, 0.0)), depth=args.geometry == "depth")
        settings.update(geometry=poses.describe(), epipolar_sigma=args.epipolar_sigma)
    elif args.pose_error is not None:
        raise ConfigError("--pose-error needs --geometry")
    conf_thresh = 0.5
    if args.calibrate is not None:
        tune = sim_scenes(args.calibrate, resolution=args.resolution)
        conf_thresh, acc = calibrate_existence(matcher, tune, directions, args.every, args.min_pixels, poses)
        settings.update(calibrated_on=str(args.calibrate), calibrated_balanced_accuracy=acc,
                        existence_threshold=conf_thresh)
        print(f"existence threshold {conf_thresh:.4f} (balanced accuracy {acc:.3f} on {args.calibrate})")
    result = evaluate_crossview(matcher, scenes, directions, args.every, args.min_pixels,
                                overlays=None if args.no_overlays else out / "overlays",
                                conf_thresh=conf_thresh, poses=poses)
    result["settings"] = settings
    print(write_report({args.name or name: result}, out))
    return 0


def _run_tracks(args: argparse.Namespace, scenes: list[Any], out: Path) -> int:
    """``corr eval crossview --tracks`` (module docstring)."""
    from corr_core.api import build_camera_trackers, packaged_checkpoint
    from corr_core.evaluation.crossview_tracks import evaluate_tracks, tracks_table

    if args.pcc is None:
        raise ConfigError("--tracks plays the node's cross-view mode: give its PCC model (--pcc)")
    for flag, given in (("--calibrate", args.calibrate), ("--pose-error", args.pose_error),
                        ("--directions", args.directions)):
        if given:
            raise ConfigError(f"--tracks does not take {flag} (the matcher's own thresholds decide, as in the node; "
                              "the anchor camera's objects go to every other camera)")
    matcher, name = _matcher(args)
    fc = packaged_checkpoint()
    result = evaluate_tracks(matcher, scenes, lambda cams: build_camera_trackers(cams, fc, device=args.device)[0],
                             anchor=args.anchor, geometry=args.geometry, retry_every=args.retry_every,
                             rematch_every=args.rematch_every)
    result["settings"] = {"sim": str(args.sim), "anchor": args.anchor, "geometry": args.geometry or "none",
                          "retry_every": args.retry_every, "rematch_every": args.rematch_every,
                          "tracking": str(fc), "proposer": args.proposer}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({args.name or name: result}, indent=2))
    table = tracks_table(args.name or name, result)
    (out / "table.md").write_text(table)
    print(table)
    return 0


def add_crossview_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr eval crossview``."""
    p = tasks.add_parser("crossview", help="cross-view object correspondence (EgoExo4D metrics, look-alike test)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sim", type=Path, default=None, help="a `corr generate sim` folder with ground truth")
    p.add_argument("--episodes", nargs="+", default=None, help="only these episodes")
    p.add_argument("--resolution", default="240p", help="frame folder resolution (default 240p)")
    p.add_argument("--directions", default="", help="SRC:TGT,... (default: ego to each exo camera and back)")
    src = add_model_args(p, default_help="the feature baseline needs one")
    src.add_argument("--pcc", type=Path, default=None, help="a PCC correspondence model (RUN/iter_N/model)")
    src.add_argument("--colour-stats", action="store_true",
                     help="the weight-free baseline: nearest neighbour of colour statistics (PCC's first pseudo-labels)")
    p.add_argument("--proposer", default="graph", choices=("graph", "sam", "none"),
                   help="target proposals: the baseline picks one, PCC snaps to them (default graph)")
    p.add_argument("--select", default="proposal", choices=("proposal", "snap"),
                   help="PCC with proposals: the proposal the predicted map covers best (soft IoU), or the "
                        "thresholded mask snapped to the proposal it overlaps (default proposal)")
    p.add_argument("--verify", default=None, choices=("colour", "none"),
                   help="PCC: check the network's choice with colour statistics (default: colour with "
                        "--calibrate, else what the checkpoint's threshold was calibrated with)")
    p.add_argument("--one-to-one", action=argparse.BooleanOptionalAction, default=None,
                   help="PCC: the objects of one source view take different target proposals (default: on "
                        "with --calibrate, else what the checkpoint's threshold was calibrated with)")
    p.add_argument("--geometry", nargs="?", const="poses", default=None, choices=("poses", "depth"),
                   help="give the matcher both cameras' calibration (the episodes' metadata, as TF and camera_info "
                        "would): matches keep to the query's epipolar band; 'depth': the source camera's depth "
                        "too (RGB-D), which narrows the band to the object's depths")
    p.add_argument("--epipolar-sigma", type=float, default=0.03,
                   help="with --geometry: the band's width, a fraction of the target's longer side (default 0.03)")
    p.add_argument("--pose-error", type=float, nargs="+", default=None, metavar="X",
                   help="with --geometry: DEGREES METRES of simulated calibration error on the target camera")
    p.add_argument("--sam-checkpoint", type=Path, default=None, help="SAM checkpoint for --proposer sam")
    p.add_argument("--calibrate", type=Path, default=None, metavar="SIM",
                   help="choose the existence threshold on these (tuning) episodes; default: confidence > 0.5")
    p.add_argument("--every", type=int, default=5, help="every n-th instant of each episode (default 5)")
    p.add_argument("--min-pixels", type=int, default=20, help="smaller objects count as not visible (default 20)")
    p.add_argument("--name", default=None, help="the method's name in the table")
    p.add_argument("--no-overlays", action="store_true", help="do not write overlay pictures")
    p.add_argument("--merge", nargs="+", default=None, metavar="RUN", help="merge earlier runs into one table")
    p.add_argument("--tracks", action="store_true",
                   help="play each episode as corr_node's cross-view mode (masks on --anchor's first frame only, "
                        "then matched and tracked) and score the other cameras with DAVIS J&F")
    p.add_argument("--anchor", default="ego", help="with --tracks: the camera given masks (default ego)")
    p.add_argument("--retry-every", type=int, default=10,
                   help="with --tracks: sets between matches of a camera missing an object (default 10, the node's)")
    p.add_argument("--rematch-every", type=int, default=0,
                   help="with --tracks: re-match every camera every n sets (default 0: never, the node's)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_overwrite_arg(p)
    p.set_defaults(func=run_crossview)
