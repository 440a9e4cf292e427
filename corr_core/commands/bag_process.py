"""``corr bag process IN OUT``: ``corr_node``'s pipeline over a recorded bag, labels into a new bag.

A robot records first and processes later. This runs the node's own objects (not a copy) over the
synchronised camera images of ``IN``: the trackers built by :func:`corr_core.api.build_camera_trackers`
(one network for every camera, on the backend asked for), the frame-size rules
(:class:`~corr_core.runtime.frames.SizeGate`), the masks waiting for their frame
(:class:`~corr_core.sync.MaskAnchors`) and :class:`~corr_core.runtime.processing.SetProcessor`,
which batches the cameras of a set. Given the same frames, settings and masks, the labels are the
live node's. ``OUT`` (a new rosbag2 folder) receives, with the input header stamps and frame ids:

* ``/<cam>/labels``: ``sensor_msgs/msg/Image`` mono16, one per processed camera frame;
* ``/corr/summary``: ``std_msgs/msg/String`` JSON per processed set (the node's ``corr/summary``).

Cross-view (the node's cross-view mode): ``--crossview PCC --masks ego=mask.png`` gives the other
cameras the anchor's objects through the matcher; ``--rig rig.yaml`` adds the cameras' geometry
(intrinsics from ``/<cam>/camera_info``, moving cameras' poses from ``/<cam>/pose``) and ``--depth``
the anchor's ``/<anchor>/depth_registered/image_rect`` (:mod:`corr_core.commands.bag_crossview`).

Masks: ``--masks cam=labels.png`` anchors a camera at its first frame (the node's ``initial_masks``);
``--masks-topics cam=/topic`` reads label images (mono8/mono16) from a topic of the bag, each taken
by the first frame whose stamp is not older than the mask's (the node's ``<cam>/masks_in``);
``/<cam>/masks_in`` topics in the bag are used when neither is given.

Resumable: the run writes ``OUT.partial/``: bag parts closed every ``--checkpoint-every`` sets,
``progress.json`` (sets done, the settings' fingerprint) and each camera's last labels. An
interrupted run (Ctrl-C, an error, a killed process: an unclosed part is discarded) continues with
``--resume`` from the last closed part: the trackers restart from the last written labels on the
last processed frames (the memory of earlier frames is not kept, so labels after a resume may
differ slightly from an uninterrupted run's). At the end the parts are merged into ``OUT`` and
``OUT.partial`` is removed. A topic that is not in the bag is an error naming it and listing the
bag's topics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from corr_core.commands.bag_crossview import crossview_topics, feed_link
from corr_core.commands.bag_parts import MaskFeed, Partial, detect_topics, merge_parts, read_mask_topics
from corr_core.errors import ConfigError, DataError

log = logging.getLogger("corr.bag.process")

__all__ = ["add_parser", "detect_topics", "process_bag"]

LABELS_TOPIC = "/{cam}/labels"
SUMMARY_TOPIC = "/corr/summary"


class _Logger:
    """``info``/``warning`` for the processor's messages (an rclpy-logger lookalike)."""

    def info(self, text: str) -> None:
        log.info(text)

    def warning(self, text: str) -> None:
        log.warning(text)


def _fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def process_bag(
    in_bag: str | Path,
    out_bag: str | Path,
    topics: dict[str, str] | None = None,
    masks: dict[str, str] | None = None,
    masks_topics: dict[str, str] | None = None,
    checkpoint: str | Path | None = None,
    random_init_seed: int | None = None,
    device: str = "cpu",
    backend: str = "auto",
    precision: str = "fp32",
    propagation: dict[str, Any] | None = None,
    slop_s: float = 0.05,
    queue_size: int = 10,
    size_change_frames: int = 3,
    checkpoint_every: int = 200,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    crossview: str | Path | None = None,
    anchor: str | None = None,
    rig: str | Path | None = None,
    depth: bool = False,
) -> dict[str, Any]:
    """Runs ``corr_node``'s pipeline over ``in_bag`` and writes the labels to ``out_bag`` (module doc).

    Args:
        in_bag: rosbag2 folder or file.
        out_bag: the new bag folder.
        topics: ``{cam: image topic}`` (default: the bag's ``/<cam>/image_raw`` topics).
        masks: ``{cam: label PNG}`` anchoring the camera at its first frame.
        masks_topics: ``{cam: label image topic}`` of the bag.
        checkpoint: corr checkpoint, ``.onnx`` or ``.engine`` (None with ``random_init_seed``).
        random_init_seed: a randomly initialised network (tests, baselines).
        device, backend, precision: how the network runs (:func:`corr_core.api.load_backend_model`).
        propagation: :class:`~corr_core.propagation.config.PropagationConfig` fields.
        slop_s: approximate-sync slop (also the mask slop), as the node's ``slop``.
        queue_size: pending messages per camera in the synchroniser.
        size_change_frames: the node's ``size_change_frames``.
        checkpoint_every: sets per closed part (what an interrupted run keeps).
        resume: continue the interrupted run in ``out_bag.partial``.
        overwrite: replace an existing ``out_bag`` (and any interrupted run).
        progress: show a progress bar.
        stop_after: stop (as if interrupted) after this many sets of this run (tests).
        crossview: a PCC checkpoint: cross-view mode (module docstring); None: off.
        anchor: the camera whose objects the others receive (None: the first).
        rig: camera rig file for cross-view matches with geometry; depth: with the anchor's depth.

    Returns:
        ``{"sets", "sets_this_run", "resumed_from", "messages", "drops", "cameras", "out", "seconds"}``.

    Raises:
        MissingCameraError: a topic that is not in the bag. ConfigError: bad arguments, an existing
            output, an interrupted run without ``--resume`` or resumed with other settings.
        KeyboardInterrupt: after saving what was processed (resume with ``resume=True``).
    """
    import numpy as np
    from tqdm import tqdm

    from corr_core.api import build_camera_trackers
    from corr_core.data.bag import bag_info, read_synced, to_rgb
    from corr_core.data.labels import read_label_png
    from corr_core.runtime.drops import DropCounter
    from corr_core.runtime.frames import SizeGate
    from corr_core.runtime.processing import Frame, SetProcessor
    from corr_core.sync import MaskAnchors, SyncedSet

    in_bag, out_bag = Path(in_bag), Path(out_bag)
    if checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every must be >= 1, got {checkpoint_every}")
    if not crossview and (rig or depth or anchor):
        raise ConfigError("--anchor, --rig and --depth need --crossview PCC_CHECKPOINT")
    info = bag_info(in_bag)
    topics = dict(topics or detect_topics(info["topics"]))
    cams = list(topics)
    if masks_topics is None and not masks:
        masks_topics = {c: f"/{c}/masks_in" for c in cams if f"/{c}/masks_in" in info["topics"]} or None
    for name, given in (("--masks", masks or {}), ("--masks-topics", masks_topics or {})):
        unknown = sorted(set(given) - set(cams))
        if unknown:
            raise ConfigError(f"{name} names camera(s) {unknown} that are not among the cameras {cams}")
    partial = Partial(out_bag)
    if out_bag.exists() and not overwrite:
        raise ConfigError(f"OUT {out_bag} exists already; pass --overwrite to replace it")
    state = partial.load() if partial.root.exists() else None
    if partial.root.exists() and not resume and not overwrite:
        raise ConfigError(f"{partial.root} holds an interrupted run: pass --resume to continue it, or --overwrite "
                          "to start over")
    if overwrite and not resume:
        for path in (out_bag, partial.root):
            if path.exists():
                shutil.rmtree(path)
        state = None
    settings = {"in": str(in_bag.resolve()), "messages": info["message_count"], "topics": topics, "masks": masks,
                "masks_topics": masks_topics, "checkpoint": str(checkpoint) if checkpoint else None,
                "random_init_seed": random_init_seed, "backend": backend, "precision": precision,
                "propagation": propagation or {}, "slop_s": slop_s, "queue_size": queue_size,
                "size_change_frames": size_change_frames,
                **({"crossview": str(crossview), "anchor": anchor, "rig": str(rig) if rig else None, "depth": depth}
                   if crossview else {})}
    fingerprint = _fingerprint(settings)
    if state is not None and state["fingerprint"] != fingerprint:
        raise ConfigError(f"{partial.root} was started with other settings ({state['settings']}); resume with the "
                          "same ones, or pass --overwrite to start over")
    if state is None:
        state = {"fingerprint": fingerprint, "settings": settings, "sets_done": 0, "parts": []}
    partial.discard_unlisted(state["parts"])
    partial.root.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    logger = _Logger()
    trackers, meta = build_camera_trackers(cams, checkpoint, propagation, device, random_init_seed, backend,
                                           precision, log=log.info)
    anchors = MaskAnchors(slop_s)
    feed = MaskFeed(read_mask_topics(in_bag, masks_topics) if masks_topics else {}, anchors.slop_ns)
    drops = DropCounter(logger)
    gates = {cam: SizeGate(size_change_frames) for cam in cams}
    link = None
    if crossview:
        from corr_core.crossview.multicam import build_link

        link = build_link(crossview, cams, anchor, device, rig=rig, depth=depth, slop_s=slop_s, log=log.info,
                          names={"checkpoint": "--crossview", "anchor": "--anchor", "rig": "--rig", "depth": "--depth"})
    processor = SetProcessor(trackers, anchors, gates, drops, logger, link=link)
    for cam, png in (masks or {}).items():
        anchors.put(cam, 0, read_label_png(png, require_palette=False))
    resumed_from = int(state["sets_done"])
    last_labels = partial.last_labels(cams) if resumed_from else {}
    total = min(info["topics"].get(t, {}).get("count", 0) for t in topics.values())
    reader = read_synced(in_bag, {**topics, **crossview_topics(link, info["topics"], depth)}, slop_s=slop_s,
                         queue_size=queue_size)
    writer, part_sets, this_run, messages = None, 0, 0, 0

    def close_part() -> None:
        nonlocal writer, part_sets
        if writer is not None:
            writer.close()
            state["parts"].append(writer.path.name)
            partial.save(state, last_labels)
            writer, part_sets = None, 0

    bar = tqdm(total=total or None, initial=resumed_from, unit="set", disable=not progress, desc="corr bag process")
    try:
        for index, synced_frames in enumerate(reader):
            stamps = {c: synced_frames.headers[c].stamp_ns for c in cams}
            for cam in cams:
                feed.feed(anchors, cam, stamps[cam])
            if index < resumed_from - 1:  # done in the interrupted run: its masks were taken then
                for cam in cams:
                    anchors.take(cam, stamps[cam])
                continue
            replay = index == resumed_from - 1  # the last set done: the trackers restart from its labels
            if replay:
                for cam in cams:
                    anchors.take(cam, stamps[cam])
                    if cam in last_labels:
                        anchors.put(cam, 0, last_labels[cam])
            frames, reason = {}, ""
            for cam in cams:
                try:
                    rgb = to_rgb(synced_frames.images[cam])
                except DataError as exc:
                    drops.drop(cam, "malformed image", str(exc))
                    reason = reason or f"camera {cam}: malformed image"
                    continue
                mask = anchors.peek(cam)
                verdict = gates[cam].check(rgb.shape[:2], None if mask is None else mask.shape)
                if not verdict.accept:
                    drops.drop(cam, verdict.reason, verdict.detail)
                    reason = reason or f"camera {cam}: {verdict.reason}"
                    continue
                frames[cam] = Frame(synced_frames.headers[cam], rgb, time.monotonic(), verdict.epoch)
            if reason:  # as in the node, a frame refused before sync makes no set
                if not replay:
                    bar.update(1)
                continue
            feed_link(link, synced_frames, drops)
            result = processor.process(SyncedSet(synced_frames.stamp_ns, frames, stamps))
            if replay:
                for cam in (c for c in cams if link is not None and c != link.anchor and c in last_labels):
                    link.resumed(cam)  # its last labels came from the matcher, not from a user
                continue
            if writer is None:
                from corr_core.data.bag import BagWriter

                writer = BagWriter(partial.part(len(state["parts"])))
            for cam, out in result.outputs.items():
                labels = out.labels
                if labels.dtype != np.uint16:
                    labels = labels.astype(np.uint16)
                writer.add_image(LABELS_TOPIC.format(cam=cam), stamps[cam], out.header.frame_id, labels, "mono16")
                last_labels[cam] = labels
                messages += 1
            if result.summary["cameras"]:
                _write_summary(writer, synced_frames.stamp_ns, result.summary)
                messages += 1
            state["sets_done"] = index + 1
            this_run += 1
            part_sets += 1
            bar.update(1)
            if part_sets >= checkpoint_every:
                close_part()
            if stop_after is not None and this_run >= stop_after:
                raise KeyboardInterrupt
    except BaseException:
        close_part()
        reader.close()
        bar.close()
        log.warning("stopped after %d sets; continue with --resume (%s)", state["sets_done"], partial.root)
        raise
    close_part()
    bar.close()
    merged = merge_parts([partial.root / p for p in state["parts"]], out_bag)
    shutil.rmtree(partial.root)
    counts = drops.counts()
    never = [c for c in cams if not processor.anchored(c)]
    if never:
        log.warning("camera(s) %s never received a mask: no labels for them (give --masks or --masks-topics)", never)
    return {"sets": state["sets_done"], "sets_this_run": this_run, "resumed_from": resumed_from, "messages": merged,
            "drops": {f"{c}/{r}": n for (c, r), n in sorted(counts.items())}, "cameras": topics,
            "backend": meta.get("backend"), "out": str(out_bag), "seconds": round(time.perf_counter() - started, 2),
            "dropped_messages": dict(reader.stats.dropped)}


def _write_summary(writer: Any, stamp_ns: int, summary: dict[str, Any]) -> None:
    from corr_core.data.bag import TYPESTORE

    string = TYPESTORE.types["std_msgs/msg/String"]
    writer.add_message(SUMMARY_TOPIC, "std_msgs/msg/String", stamp_ns, string(data=json.dumps(summary)))


def _pairs(specs: list[str] | None, flag: str) -> dict[str, str] | None:
    if not specs:
        return None
    from corr_core.commands.bag import parse_topics

    try:
        return parse_topics(specs)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--topics", flag)) from None


def run_process(args: argparse.Namespace) -> int:
    """Runs ``corr bag process``; returns the exit code."""
    from corr_core.options import backend_choice, model_source, propagation_overrides

    source = model_source(args, default=_default_checkpoint())
    choice = backend_choice(args)
    report = process_bag(
        args.input, args.output, topics=_pairs(args.topics, "--topics"), masks=_pairs(args.masks, "--masks"),
        masks_topics=_pairs(args.masks_topics, "--masks-topics"), checkpoint=source.checkpoint,
        random_init_seed=source.random_init_seed, device=source.device, backend=choice.backend,
        precision=choice.precision, propagation=propagation_overrides(args), slop_s=args.slop,
        queue_size=args.queue_size, checkpoint_every=args.checkpoint_every, resume=args.resume,
        overwrite=args.overwrite, progress=not args.no_progress, crossview=args.crossview, anchor=args.anchor,
        rig=args.rig, depth=args.depth,
    )
    print(json.dumps(report, indent=2))
    return 0


def _default_checkpoint() -> Path | None:
    from corr_core.api import packaged_checkpoint

    return packaged_checkpoint()


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``corr bag process`` (``sub``: the actions of ``corr bag``)."""
    from corr_core.options import add_backend_args, add_model_args, add_propagation_args

    p = sub.add_parser(
        "process",
        help="run corr_node's pipeline over a recorded bag; labels and summaries into a new bag (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", type=Path, metavar="IN", help="rosbag2 folder (or .mcap/.db3 file) with camera images")
    p.add_argument("output", type=Path, metavar="OUT", help="new rosbag2 folder for /<cam>/labels and /corr/summary")
    p.add_argument("--topics", action="append", metavar="CAM=TOPIC[,CAM=TOPIC]",
                   help="camera image topics (default: every /<cam>/image_raw[/compressed] of the bag)")
    p.add_argument("--masks", action="append", metavar="CAM=PNG[,CAM=PNG]",
                   help="label PNG anchoring a camera at its first frame (the node's initial_masks)")
    p.add_argument("--masks-topics", action="append", metavar="CAM=TOPIC[,CAM=TOPIC]",
                   help="label images (mono8/mono16) in the bag, each anchoring the first frame not older than it "
                   "(default: /<cam>/masks_in where the bag has it)")
    add_model_args(p, default_help="the shipped checkpoint")
    add_backend_args(p)
    add_propagation_args(p)
    p.add_argument("--crossview", metavar="PCC_CHECKPOINT",
                   help="cross-view mode: cameras without masks get the anchor camera's objects (a PCC model, e.g. "
                        "corr_core/assets/checkpoints/pcc_resnet18_l2_prior.safetensors)")
    p.add_argument("--anchor", help="with --crossview: the camera whose masks the others receive [the first]")
    p.add_argument("--rig", type=Path, help="with --crossview: camera rig file (corr_core/crossview/rig.py); "
                   "intrinsics from /<cam>/camera_info, moving cameras' poses from /<cam>/pose")
    p.add_argument("--depth", action="store_true",
                   help="with --rig: the anchor's depth from /<anchor>/depth_registered/image_rect")
    p.add_argument("--slop", type=float, default=0.05, help="approximate-sync slop in seconds (the node's) [0.05]")
    p.add_argument("--queue-size", type=int, default=10, help="pending messages per camera while syncing [10]")
    p.add_argument("--checkpoint-every", type=int, default=200,
                   help="sets per closed part: what an interrupted run keeps [200]")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in OUT.partial")
    p.add_argument("--overwrite", action="store_true", help="replace OUT (and any interrupted run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_process)
