"""Diagnostic: the node's cross-view logic over whole episodes, scored as tracks (not matches).

For each episode of a ``corr generate sim`` folder: ego's ground-truth masks of frame 0 are the
only masks given; :class:`~corr_core.crossview.multicam.MultiCameraTracker` (the logic
``corr_node`` serves: per-camera trackers on the shipped FC features, the shipped PCC matcher with
graph proposals, retries every ``--retry-every`` sets) gives exo1 the ego ids and tracks them;
exo1's labels are scored with DAVIS J&F against its ground truth over the objects exo1 shows
(pixels given to an object it never shows are counted apart). ``corr demo --crossview`` does
this for one episode through real ROS 2 nodes; this measures it over many.

    corr generate sim --out runs/xv_heldout30 --seed 0 --episodes 30 --frames 30 --hidden-per-camera 1 --no-bag
    python docs/crossview/diagnostics/track_episodes.py runs/xv_heldout30 --episodes 30 --out runs/xv_track.json
    # with poses per frame and the ego depth (a calibrated RGB-D rig): --geometry
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from corr_core.api import build_camera_trackers, packaged_checkpoint
from corr_core.crossview import SHIPPED_PCC
from corr_core.crossview.matcher import CrossViewMatcher
from corr_core.crossview.multicam import MultiCameraTracker
from corr_core.crossview.rig import CameraRig
from corr_core.data.labels import read_label_png
from corr_core.geometry import CameraPose
from corr_core.methods.pcc.scenes import read_rgb, sim_scenes
from corr_core.metrics.davis import evaluate_sequence
from corr_core.proposals import build_proposer

CAMERAS = ["ego", "exo1"]


def score_exo(scene, labels: dict[int, np.ndarray]) -> tuple[dict[str, float], int]:
    """DAVIS J&F of exo1's labels over the objects exo1 shows, and the pixels given to objects it
    never shows. The ids are renumbered 1..k first: DAVIS scores ids 1..max of the first frame, so
    a gap (an ego object hidden from exo1, as the sim hides one per camera) would count as an
    object with empty ground truth in some episodes and not in others."""
    gt = np.stack([read_label_png(scene.labels["exo1"][t]) for t in range(scene.num_frames)]).astype(np.int64)
    shown = np.unique(gt)
    shown = shown[shown != 0]
    table = np.zeros(int(max(gt.max(), max(int(lab.max()) for lab in labels.values()))) + 1, np.int64)
    table[shown] = np.arange(1, len(shown) + 1)
    pred = np.stack([labels[t] for t in range(scene.num_frames)]).astype(np.int64)
    phantom = int(np.count_nonzero((pred != 0) & (table[pred] == 0)))
    result = evaluate_sequence(table[gt], table[pred], name=f"exo1/{scene.name}", missing_objects="empty")
    j = float(np.mean([o["J-Mean"] for o in result["objects"].values()]))
    f = float(np.mean([o["F-Mean"] for o in result["objects"].values()]))
    return {"J&F-Mean": (j + f) / 2, "J-Mean": j, "F-Mean": f}, phantom


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sim", type=Path)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--retry-every", type=int, default=10)
    p.add_argument("--rematch-every", type=int, default=0)
    p.add_argument("--input-scale", type=float, default=1.0)
    p.add_argument("--geometry", action="store_true",
                   help="a rig of moving cameras: poses per frame and ego depth from the episode, as corr demo --geometry")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(2)
    import corr_core

    shipped = Path(corr_core.__file__).parent / "assets" / "checkpoints" / f"{SHIPPED_PCC}.safetensors"
    matcher = CrossViewMatcher.from_checkpoint(shipped, proposer=build_proposer("graph"))
    propagation = {"topk": 10, "context": 20, "radius": 12.0, "input_scale": args.input_scale}
    rows, started = [], time.time()
    for scene in sim_scenes(args.sim)[: args.episodes]:
        trackers, _ = build_camera_trackers(CAMERAS, packaged_checkpoint(), propagation)
        rig = None
        if args.geometry:  # every camera moving, its pose given per frame, in the sim's world frame
            rig = CameraRig({}, moving=CAMERAS, frame="world")
            for cam in CAMERAS:
                pose = CameraPose.from_sim(scene.meta, cam, 0)
                rig.set_intrinsics(cam, pose.K, pose.size)
        multi = MultiCameraTracker(trackers, matcher, "ego", rematch_every=args.rematch_every,
                                   retry_every=args.retry_every, rig=rig)
        labels, matches = {"exo1": {}}, 0
        for t in range(scene.num_frames):
            frames = {cam: read_rgb(scene.frames[cam][t]) for cam in CAMERAS}
            masks = {"ego": read_label_png(scene.labels["ego"][t])} if t == 0 else None
            geometry = {}
            if rig is not None:
                depth = scene.depth_m("ego", t)
                if depth.shape != frames["ego"].shape[:2]:
                    depth = cv2.resize(depth, frames["ego"].shape[1::-1], interpolation=cv2.INTER_NEAREST)
                geometry = {"anchor_depth": depth,
                            "poses": {cam: CameraPose.from_sim(scene.meta, cam, t).T_world_cam for cam in CAMERAS}}
            step = multi.step(frames, masks, **geometry)
            matches += len(step.matched)
            exo = step.labels["exo1"]
            labels["exo1"][t] = np.zeros(frames["exo1"].shape[:2], np.int64) if exo is None else exo
        score, phantom = score_exo(scene, labels["exo1"])
        rows.append({"episode": scene.name, "jf": score["J&F-Mean"], "j": score["J-Mean"], "f": score["F-Mean"],
                     "matches": matches, "pixels_of_objects_not_in_exo1": phantom})
        print(f"{scene.name}: exo1 J&F {score['J&F-Mean']:.3f} ({matches} matches, {phantom} px of objects "
              "exo1 does not show)", flush=True)
    jf = np.array([r["jf"] for r in rows])
    boot = np.random.default_rng(0).choice(jf, (2000, len(jf))).mean(1)
    report = {"sim": str(args.sim), "episodes": rows, "jf_mean": float(jf.mean()),
              "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
              "retry_every": args.retry_every, "rematch_every": args.rematch_every, "input_scale": args.input_scale, "geometry": args.geometry,
              "seconds": round(time.time() - started, 1)}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"exo1 J&F over {len(rows)} episodes: {jf.mean():.3f} (95 % {report['ci95'][0]:.3f}..{report['ci95'][1]:.3f})")


if __name__ == "__main__":
    main()
