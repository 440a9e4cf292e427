"""CRW label propagation (dense vs memory-efficient) and the streaming Tracker."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from corr_core.errors import ConfigError, CorrError, DataError, ShapeMismatchError
from corr_core.propagation.crw import (
    PropagationConfig,
    downsample_labels,
    propagate_dense,
    propagate_local,
    propagate_step,
    upsample_labels,
)
from corr_core.propagation.tracker import Tracker

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def exact_features(n: int, h: int, w: int, seed: int, c0: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 query/context features whose dot products are exact and pairwise distinct.

    Score(query, context j) = (U * <a_q, b_j> + id_j) * 2^-e with small integer vectors a, b and a
    unique integer id per context position (id < U). Every product and partial sum is an integer
    multiple of 2^-e below 2^24 of them, so any summation order gives the same float32 value, and
    no two context positions tie for a query: dense and local must select identical sets.
    """
    g = torch.Generator().manual_seed(seed)
    total = n * h * w
    u = 1 << max(1, (total - 1).bit_length())
    assert u * c0 * 64 + total < 2**24
    a = torch.randint(-8, 9, (c0, h, w), generator=g).float()
    b = torch.randint(-8, 9, (n, c0, h, w), generator=g).float()
    ids = torch.randperm(total, generator=g).float().reshape(n, 1, h, w)
    e_q, e_k = int(math.log2(u)) + 4, 5
    query = torch.cat([a * u, torch.ones(1, h, w)]) * 2.0**-e_q
    ctx = torch.cat([b, ids], dim=1) * 2.0**-e_k
    return query, ctx


def random_labels(n: int, k: int, h: int, w: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, k, h, w, generator=g, dtype=dtype) * 3, dim=1)


def one_hot_codes(codes: torch.Tensor, c: int) -> torch.Tensor:
    """``(..., h, w)`` integer codes -> ``(..., c, h, w)`` float one-hot features."""
    return F.one_hot(codes, c).movedim(-1, -3).float()


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("topk", 0),
        ("topk", True),
        ("context", -1),
        ("radius", 0.0),
        ("radius", float("nan")),
        ("temperature", -0.1),
        ("temperature", float("inf")),
        ("feature_stride", 0),
        ("method", "sparse"),
        ("dtype", "int8"),
        ("pad_context", 1),
        ("tile_size", -2),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        PropagationConfig(**{field: value})


def test_config_defaults_and_from_dict():
    cfg = PropagationConfig()
    assert (cfg.topk, cfg.context, cfg.radius, cfg.temperature, cfg.feature_stride) == (10, 20, 12.0, 0.05, 8)
    assert PropagationConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="radiuss"):
        PropagationConfig.from_dict({"radiuss": 3})


# --------------------------------------------------------------------------------------------
# dense vs local
# --------------------------------------------------------------------------------------------

AGREE_CASES = [
    # h, w, n, k_obj, radius, topk, num_reference, restrict_reference, tile
    (9, 9, 4, 3, 3.0, 10, 1, False, 0),
    (7, 13, 5, 12, 2.5, 1, 1, False, 4),  # non-square, top-1, many objects
    (13, 6, 3, 4, 1.0, 7, 1, False, 3),  # radius 1: only the same cell in restricted frames
    (11, 17, 4, 5, 4.0, 500, 1, False, 5),  # topk larger than the window
    (6, 8, 3, 2, 40.0, 10, 1, False, 0),  # radius larger than the map
    (10, 12, 3, 3, math.inf, 5, 1, False, 0),  # no radius
    (12, 10, 4, 6, 3.5, 12, 1, True, 4),  # radius on the reference too
    (8, 9, 4, 2, 2.0, 30, 0, False, 2),  # no reference frame
    (5, 7, 3, 3, 3.0, 10, 2, False, 16),  # two reference frames, tile larger than the map
]


@pytest.mark.parametrize("h, w, n, k_obj, radius, topk, nref, restrict, tile", AGREE_CASES)
def test_dense_and_local_agree_float32(h, w, n, k_obj, radius, topk, nref, restrict, tile):
    query, ctx = exact_features(n, h, w, seed=h * 100 + w)
    labels = random_labels(n, k_obj, h, w, seed=n)
    cfg = PropagationConfig(
        topk=topk, radius=radius, restrict_reference=restrict, tile_size=tile, max_block_elements=20_000
    )
    dense = propagate_dense(query, ctx, labels, cfg, num_reference=nref)
    local = propagate_local(query, ctx, labels, cfg, num_reference=nref)
    assert dense.shape == local.shape == (k_obj, h, w)
    assert dense.dtype == local.dtype == torch.float32
    assert torch.allclose(dense.sum(0), torch.ones(h, w), atol=1e-5)
    assert (dense - local).abs().max().item() <= 1e-5


@pytest.mark.parametrize("h, w, n, k_obj, radius, topk, nref, restrict, tile", AGREE_CASES[:6])
def test_dense_and_local_agree_on_random_unit_features(h, w, n, k_obj, radius, topk, nref, restrict, tile):
    g = torch.Generator().manual_seed(7)
    query = F.normalize(torch.randn(16, h, w, generator=g, dtype=torch.float64), dim=0)
    ctx = F.normalize(torch.randn(n, 16, h, w, generator=g, dtype=torch.float64), dim=1)
    labels = random_labels(n, k_obj, h, w, seed=3, dtype=torch.float64)
    cfg = PropagationConfig(topk=topk, radius=radius, restrict_reference=restrict, tile_size=tile)
    dense = propagate_dense(query, ctx, labels, cfg, num_reference=nref, query_chunk=17)
    local = propagate_step(query, ctx, labels, cfg, num_reference=nref)
    assert local.dtype == torch.float64
    assert (dense - local).abs().max().item() <= 1e-10


def test_low_precision_matmul_keeps_float32_softmax():
    query, ctx = exact_features(3, 6, 7, seed=1)
    labels = random_labels(3, 3, 6, 7, seed=1)
    cfg = PropagationConfig(topk=5, radius=3.0, dtype="bfloat16")
    out = propagate_local(query, ctx, labels, cfg)
    assert out.dtype == torch.float32
    assert torch.allclose(out.sum(0), torch.ones(6, 7), atol=1e-5)


def test_shape_errors():
    query, ctx = exact_features(2, 5, 6, seed=0)
    labels = random_labels(2, 2, 5, 6, seed=0)
    cfg = PropagationConfig()
    with pytest.raises(ShapeMismatchError, match="context labels"):
        propagate_step(query, ctx, labels[:, :, :4], cfg)
    with pytest.raises(ShapeMismatchError, match="query features"):
        propagate_step(query[:, :4], ctx, labels, cfg)
    with pytest.raises(ShapeMismatchError, match="num_reference"):
        propagate_step(query, ctx, labels, cfg, num_reference=3)


# --------------------------------------------------------------------------------------------
# hand-built cases
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["dense", "local"])
def test_identity_features_copy_labels_exactly(method):
    h, w = 6, 9
    codes = torch.arange(h * w).reshape(h, w)
    feats = one_hot_codes(codes, h * w)  # each cell its own unit vector
    labels = random_labels(2, 4, h, w, seed=5)
    labels[1] = labels[0]
    cfg = PropagationConfig(topk=1, radius=2.0, method=method)
    out = propagate_step(feats, torch.stack([feats, feats]), labels, cfg)
    assert torch.equal(out, labels[0])


@pytest.mark.parametrize("method", ["dense", "local"])
@pytest.mark.parametrize("shift", [(0, 3), (2, -1), (-2, 2)])
def test_shifted_pattern_follows_its_features(method, shift):
    """An object whose cells carry codes for their position inside the object is found shifted."""
    h, w, size = 10, 14, 3
    y0, x0 = 3, 5
    codes_ref = torch.zeros(h, w, dtype=torch.long)  # 0 = background code
    codes_ref[y0 : y0 + size, x0 : x0 + size] = torch.arange(1, size * size + 1).reshape(size, size)
    codes_tgt = torch.roll(codes_ref, shifts=shift, dims=(0, 1))
    c = size * size + 1
    labels = torch.zeros(1, 2, h, w)
    labels[0, 0] = (codes_ref == 0).float()
    labels[0, 1] = (codes_ref > 0).float()
    # Radius 4 (> shift length): every shifted cell stays in reach even with a restricted reference.
    for restrict in (False, True):
        cfg = PropagationConfig(topk=3, radius=4.0, method=method, restrict_reference=restrict)
        out = propagate_step(one_hot_codes(codes_tgt, c), one_hot_codes(codes_ref, c)[None], labels, cfg)
        assert torch.equal(out.argmax(0), (codes_tgt > 0).long())


@pytest.mark.parametrize("method", ["dense", "local"])
def test_radius_excludes_far_matches(method):
    """The exact match lies outside the radius in a short-term frame: the near, weaker one wins."""
    h, w = 9, 12
    py, px = 4, 2  # target position; its exact match sits at (4, 10), 8 cells away
    query = torch.zeros(3, h, w)
    query[2] = 1.0  # every other target cell: orthogonal to the codes below
    query[:, py, px] = torch.tensor([1.0, 0.0, 0.0])
    ctx = torch.zeros(2, 3, h, w)
    ctx[:, 2] = -1.0  # context cells are dissimilar to everything ...
    ctx[1, :, 4, 10] = torch.tensor([1.0, 0.0, 0.0])  # ... except the exact (far) match
    ctx[1, :, 5, 3] = torch.tensor([0.8, 0.6, 0.0])  # and a weaker near match (distance sqrt 2)
    ctx[0] = ctx[1]  # the reference frame holds the same pattern
    labels = torch.zeros(2, 3, h, w)
    labels[:, 0] = 1.0
    labels[1, :, 4, 10] = torch.tensor([0.0, 1.0, 0.0])  # far match: object 1
    labels[1, :, 5, 3] = torch.tensor([0.0, 0.0, 1.0])  # near match: object 2
    labels[0] = labels[1]

    def predicted(cfg, ctx_feats, ctx_labels, nref):
        return (
            propagate_step(query, ctx_feats, ctx_labels, cfg, num_reference=nref)[:, py, px].argmax().item()
        )

    short_only = dict(ctx_feats=ctx[1:], ctx_labels=labels[1:], nref=0)
    assert predicted(PropagationConfig(topk=1, radius=5.0, method=method), **short_only) == 2
    assert predicted(PropagationConfig(topk=1, radius=8.0, method=method), **short_only) == 2  # strict <
    assert predicted(PropagationConfig(topk=1, radius=8.01, method=method), **short_only) == 1
    # CRW matches the reference frame globally: there the far exact match is used ...
    assert predicted(PropagationConfig(topk=1, radius=5.0, method=method), ctx, labels, 1) == 1
    # ... unless the radius is applied to the reference as well.
    cfg = PropagationConfig(topk=1, radius=5.0, method=method, restrict_reference=True)
    assert predicted(cfg, ctx, labels, 1) == 2


@pytest.mark.parametrize("method", ["dense", "local"])
def test_out_of_image_window_entries_are_excluded(method):
    """All real scores are negative: zero-padded entries (score 0) must not enter the top-k."""
    h, w = 5, 6
    query = F.normalize(torch.ones(4, h, w), dim=0)
    ctx = -query[None].clone()
    labels = random_labels(1, 3, h, w, seed=11)
    cfg = PropagationConfig(topk=9, radius=2.0, method=method, tile_size=3)  # window = 3x3 cells
    out = propagate_step(query, ctx, labels, cfg, num_reference=0)
    lab = labels[0].numpy()
    for y, x in [(0, 0), (0, 3), (2, 2), (4, 5), (4, 0)]:
        ys, xs = slice(max(0, y - 1), y + 2), slice(max(0, x - 1), x + 2)
        expected = lab[:, ys, xs].reshape(3, -1).mean(axis=1)  # equal scores: uniform weights
        np.testing.assert_allclose(out[:, y, x].numpy(), expected, atol=1e-6)


def test_label_resizing_matches_cv2_bilinear():
    """CRW resizes label maps with cv2.resize (INTER_LINEAR) both ways; so do we."""
    rng = np.random.default_rng(0)
    onehot = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (37, 53))]  # (H, W, K)
    ours = downsample_labels(torch.from_numpy(onehot).permute(2, 0, 1), (5, 7)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, cv2.resize(onehot, (7, 5), interpolation=cv2.INTER_LINEAR), atol=1e-5)
    soft = rng.random((5, 7, 3), dtype=np.float32)
    ours = upsample_labels(torch.from_numpy(soft).permute(2, 0, 1), (37, 53)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, cv2.resize(soft, (53, 37), interpolation=cv2.INTER_LINEAR), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Tracker
# --------------------------------------------------------------------------------------------

BG = (0.2, 0.2, 0.2)
COLORS = {3: (1.0, 0.0, 0.0), 7: (0.0, 0.0, 1.0), 9: (0.0, 1.0, 0.0)}


class ColorCells(torch.nn.Module):
    """Stride-8 features from colour: mean RGB per 8x8 cell mapped to [-1, 1] (ceil-size grid)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(2.0))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return F.avg_pool2d(x, 8, ceil_mode=True) * self.scale - 1.0


def render(h: int, w: int, boxes: dict[int, tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """A frame with coloured boxes on a dark background and its label map (uint8)."""
    frame = np.empty((h, w, 3), np.float32)
    frame[:] = BG
    masks = np.zeros((h, w), np.uint8)
    for oid, (y, x, bh, bw) in boxes.items():
        frame[y : y + bh, x : x + bw] = COLORS[oid]
        masks[y : y + bh, x : x + bw] = oid
    return (frame * 255).round().astype(np.uint8), masks


def moving_boxes(t: int) -> dict[int, tuple[int, int, int, int]]:
    return {3: (8, 8 + 8 * t, 16, 16), 7: (40 + 8 * (t % 2), 64, 16, 24)}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_tracker_follows_objects_and_keeps_ids():
    tracker = Tracker(ColorCells(), PropagationConfig(topk=5, context=3, radius=4.0))
    frame, masks = render(64, 96, moving_boxes(0))
    out = tracker.step(frame, masks)
    assert out.dtype == np.uint8 and np.array_equal(out, masks)
    assert tracker.object_ids == (3, 7) and tracker.label_ids == (0, 3, 7)
    for t in range(1, 6):
        frame, masks = render(64, 96, moving_boxes(t))
        out = tracker.step(frame)
        assert out.dtype == np.uint8 and out.shape == masks.shape
        assert set(np.unique(out)) == {0, 3, 7}
        # Every 8x8 cell gets its object at feature resolution ...
        cells = np.asarray(tracker.label_ids)[tracker.soft_labels.argmax(0).numpy()]
        assert np.array_equal(cells, masks[4::8, 4::8]), f"frame {t}"
        # ... and after bilinear upsampling only box corners round off (as in CRW).
        for oid in (3, 7):
            assert iou(out == oid, masks == oid) > 0.85
    assert tracker.num_frames == 6


def test_tracker_ids_255_and_dtype_follow_first_masks():
    tracker = Tracker(ColorCells(), PropagationConfig(topk=5, context=2, radius=4.0))
    frame, masks = render(64, 96, moving_boxes(0))
    masks32 = masks.astype(np.int32)
    masks32[masks == 7] = 255
    assert tracker.step(frame, masks32).dtype == np.int32
    assert tracker.object_ids == (3, 255)
    frame, masks = render(64, 96, moving_boxes(1))
    out = tracker.step(frame)
    assert out.dtype == np.int32 and set(np.unique(out)) == {0, 3, 255}
    assert iou(out == 255, masks == 7) > 0.85 and iou(out == 3, masks == 3) > 0.85

    boolean = Tracker(ColorCells(), PropagationConfig(context=1))
    assert boolean.step(frame, masks == 3).dtype == np.uint16
    assert boolean.step(frame).dtype == np.uint16


def test_tracker_memory_is_bounded():
    cfg = PropagationConfig(topk=3, context=3, radius=3.0)
    tracker = Tracker(ColorCells(), cfg)
    frame, masks = render(32, 48, {3: (8, 8, 8, 8)})
    tracker.step(frame, masks)
    assert tracker.memory_frames == 1 + 3  # CRW starts the memory with copies of the first frame
    sizes = []
    for t in range(1, 50):
        tracker.step(render(32, 48, {3: (8, 8 + 8 * (t % 3), 8, 8)})[0])
        sizes.append(tracker.memory_bytes)
    assert tracker.num_frames == 50
    assert tracker.memory_frames == 4 and len(tracker._memory) == 3
    assert len(set(sizes)) == 1  # nothing grows with the length of the stream

    unpadded = Tracker(ColorCells(), PropagationConfig(topk=3, context=3, radius=3.0, pad_context=False))
    unpadded.step(frame, masks)
    counts = [unpadded.memory_frames]
    for _ in range(5):
        unpadded.step(frame)
        counts.append(unpadded.memory_frames)
    assert counts == [1, 2, 3, 4, 4, 4]


def test_tracker_context_is_reference_plus_last_m_soft_labels():
    """Tracker state == a hand-run CRW loop: reference + m previous frames (padded with the first)."""
    h, w, m = 6, 7, 2
    cfg = PropagationConfig(topk=4, context=m, radius=3.0)
    g = torch.Generator().manual_seed(2)
    feats = [F.normalize(torch.randn(8, h, w, generator=g), dim=0) for _ in range(6)]
    masks = np.zeros((h * 8, w * 8), np.uint8)
    masks[8:24, 16:40] = 5
    tracker = Tracker.from_features(cfg)
    tracker.step_features(feats[0], masks)
    ref_labels = tracker.soft_labels
    hist_f, hist_l = [feats[0]] * m, [ref_labels] * m  # CRW pads with copies of frame 0
    for t in range(1, 6):
        tracker.step_features(feats[t])
        ctx_f = torch.stack([feats[0], *hist_f[-m:]])
        ctx_l = torch.stack([ref_labels, *hist_l[-m:]])
        expected = propagate_dense(feats[t], ctx_f, ctx_l, cfg)
        assert torch.allclose(tracker.soft_labels, expected, atol=1e-5)
        hist_f.append(feats[t])
        hist_l.append(expected)


def test_tracker_reanchors_with_new_masks():
    tracker = Tracker(ColorCells(), PropagationConfig(topk=5, context=3, radius=4.0))
    frame, masks = render(64, 96, moving_boxes(0))
    tracker.step(frame, masks)
    tracker.step(render(64, 96, moving_boxes(1))[0])
    # New annotation: object 3 is gone, a green object 9 appears.
    boxes = {7: (40, 64, 16, 24), 9: (8, 16, 16, 16)}
    frame, masks = render(64, 96, boxes)
    assert np.array_equal(tracker.step(frame, masks), masks)
    assert tracker.object_ids == (3, 7, 9)
    assert tracker.memory_frames == 4
    boxes[9] = (16, 24, 16, 16)
    frame, masks = render(64, 96, boxes)
    out = tracker.step(frame)
    assert 3 not in np.unique(out)
    assert iou(out == 9, masks == 9) > 0.85 and iou(out == 7, masks == 7) > 0.85


@pytest.mark.parametrize("mode, min_iou", [("stretch", 0.5), ("grid", 0.85)])
def test_tracker_sizes_not_divisible_by_stride(mode, min_iou):
    """60x92 frames: the model gives a ceil-size 8x12 grid; both resize modes track the objects,
    "grid" also keeps their outlines in place (CRW's "stretch" shifts them by up to 4 px)."""
    tracker = Tracker(ColorCells(), PropagationConfig(topk=5, context=2, radius=4.0, label_resize=mode))
    frame, masks = render(60, 92, moving_boxes(0))
    tracker.step(frame, masks)
    for t in (1, 2):
        frame, masks = render(60, 92, moving_boxes(t))
        out = tracker.step(frame)
        assert out.shape == (60, 92)
        cells = np.asarray(tracker.label_ids)[tracker.soft_labels.argmax(0).numpy()]
        assert np.array_equal(cells, render(64, 96, moving_boxes(t))[1][4::8, 4::8])
        assert iou(out == 3, masks == 3) > min_iou and iou(out == 7, masks == 7) > min_iou


def test_tracker_step_features_matches_step():
    model = ColorCells()
    cfg = PropagationConfig(topk=5, context=2, radius=4.0)
    by_frame, by_feat = Tracker(model, cfg), Tracker.from_features(cfg)
    for t in range(3):
        frame, masks = render(64, 96, moving_boxes(t))
        given = masks if t == 0 else None
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
        a = by_frame.step(frame, given)
        b = by_feat.step_features(model(x), given)
        assert np.array_equal(a, b)


def test_tracker_errors_are_clear():
    model = ColorCells()
    tracker = Tracker(model, PropagationConfig(context=2))
    frame, masks = render(64, 96, moving_boxes(0))
    with pytest.raises(CorrError, match="first frame .* needs masks"):
        tracker.step(frame)
    assert model.calls == 0  # refused before running the model
    with pytest.raises(ShapeMismatchError, match="masks are 64x95 but the frame is 64x96"):
        tracker.step(frame, masks[:, :95])
    assert model.calls == 0
    with pytest.raises(DataError, match="uint8"):
        tracker.step(frame.astype(np.float32), masks)
    with pytest.raises(DataError, match="integer ids"):
        tracker.step(frame, masks.astype(np.float32))
    tracker.step(frame, masks)
    small = render(56, 96, moving_boxes(0))[0]
    with pytest.raises(ShapeMismatchError, match=r"64x96 to 56x96"):
        tracker.step(small)
    with pytest.raises(DataError, match="does not fit"):
        tracker.step(frame, masks.astype(np.int32) * 100)
    tracker.reset()
    assert tracker.num_frames == 0 and tracker.object_ids == () and tracker.memory_frames == 0
    with pytest.raises(CorrError, match="needs masks"):
        tracker.step(small)
    assert tracker.step(small, np.zeros((56, 96), np.uint8)).shape == (56, 96)  # size free after reset

    wrong_stride = Tracker(ColorCells(), PropagationConfig(feature_stride=4))
    with pytest.raises(ShapeMismatchError, match="feature_stride 4"):
        wrong_stride.step(frame, masks)
    with pytest.raises(CorrError, match="needs a model"):
        Tracker.from_features().step(frame, masks)
