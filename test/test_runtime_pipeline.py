"""The node's set processing without ROS (corr_core.runtime): batching the cameras of a set.

The :class:`SetProcessor` of ``corr_node`` and ``corr bag process`` runs the frames of a
synchronised set through the shared network in one batch; the labels must be those of the
trackers run one camera at a time.
"""

from __future__ import annotations

import numpy as np
import pytest

from corr_core.runtime.drops import DropCounter
from corr_core.runtime.frames import SizeGate
from corr_core.runtime.processing import Frame, SetProcessor
from corr_core.sync import MaskAnchors, SyncedSet

H, W = 48, 64


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = info


class Header:
    def __init__(self, frame_id: str) -> None:
        self.frame_id = frame_id


def scene(seed: int, shift: int, size=(H, W)) -> tuple[np.ndarray, np.ndarray]:
    """A textured frame with two objects moved right by ``shift`` pixels, and its labels."""
    h, w = size
    rng = np.random.default_rng(seed)
    image = rng.integers(60, 160, (h, w, 3)).astype(np.uint8)
    labels = np.zeros((h, w), np.uint16)
    for obj, (y0, y1, x0, x1), colour in ((3, (8, 30, 6, 26), (220, 40, 40)), (9, (20, 44, 34, 58), (30, 60, 230))):
        xs = slice(min(w - 1, x0 + shift), min(w, x1 + shift))
        image[y0:y1, xs] = colour
        labels[y0:y1, xs] = obj
    return image, labels


def trackers(cams, propagation=None, backend="torch"):
    from corr_core.api import build_tracker

    first = build_tracker(None, propagation or {"topk": 5, "context": 2, "radius": 4.0}, random_init_seed=0)
    return {c: first if i == 0 else type(first)(first.model, first.cfg, "cpu") for i, c in enumerate(cams)}


def run(proc: SetProcessor, sequences: dict[str, list[np.ndarray]], masks: dict[str, np.ndarray]) -> list[dict]:
    out = []
    for cam, m in masks.items():
        proc.anchors.put(cam, 1, m)
    for i in range(len(next(iter(sequences.values())))):
        stamp = i + 1
        frames = {c: Frame(Header(c), seq[i], 0.0) for c, seq in sequences.items()}
        res = proc.process(SyncedSet(stamp, frames, dict.fromkeys(frames, stamp)))
        out.append({c: o.labels for c, o in res.outputs.items()})
    return out


def processor(cams, batch: bool, **kw) -> SetProcessor:
    log = Log()
    return SetProcessor(trackers(cams, **kw), MaskAnchors(), {c: SizeGate() for c in cams}, DropCounter(log), log,
                        batch=batch)


@pytest.mark.parametrize("sizes", [{"ego": (H, W), "exo1": (H, W), "exo2": (H, W)},
                                   {"ego": (H, W), "exo1": (H + 8, W - 16)}])
def test_a_set_goes_through_the_network_in_one_batch_with_the_labels_of_one_camera_at_a_time(sizes):
    cams = list(sizes)
    sequences, masks = {}, {}
    for k, cam in enumerate(cams):
        frames = [scene(k, s, sizes[cam]) for s in (0, 2, 4, 6)]
        sequences[cam] = [f for f, _ in frames]
        masks[cam] = frames[0][1]
    batched = processor(cams, batch=True)
    single = processor(cams, batch=False)
    assert batched.encoder is not None and single.encoder is None
    got, ref = run(batched, sequences, masks), run(single, sequences, masks)
    for step_got, step_ref in zip(got, ref, strict=True):
        assert sorted(step_got) == cams
        for cam in cams:
            np.testing.assert_array_equal(step_got[cam], step_ref[cam])
    groups = len(set(sizes.values()))
    # one network call per set and frame size (the anchoring frame is encoded too: the reference)
    assert batched.encoder.batches == groups * len(got)
    assert batched.encoder.frames == len(cams) * len(got)


def test_cameras_without_a_mask_are_not_encoded_and_a_failing_batch_is_charged_per_camera():
    cams = ["ego", "exo1"]
    proc = processor(cams, batch=True)
    img, mask = scene(0, 0)
    frames = {c: Frame(Header(c), img, 0.0) for c in cams}
    proc.anchors.put("ego", 1, mask)
    out = proc.process(SyncedSet(1, frames, dict.fromkeys(cams, 1)))
    assert sorted(out.outputs) == ["ego"] and out.summary["skipped"] == {"exo1": "no initial mask yet"}
    assert proc.encoder.frames == 1  # exo1 was waiting for a mask: nothing computed for it
    proc.anchors.put("exo1", 2, mask)
    bad = dict(frames, exo1=Frame(Header("exo1"), img.astype(np.float32), 0.0))  # not uint8
    out = proc.process(SyncedSet(2, bad, dict.fromkeys(cams, 2)))
    assert sorted(out.outputs) == ["ego"] and out.summary["skipped"] == {"exo1": "tracker error"}
    assert proc.drops.counts() == {("exo1", "no initial mask yet"): 1, ("exo1", "tracker error"): 1}
