"""CRW label propagation (dense vs memory-efficient) and the streaming Tracker."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from corr_core.errors import ConfigError, CorrError, DataError, ShapeMismatchError
from corr_core.models.fusion import FusedFeatures
from corr_core.propagation.crw import (
    PropagationConfig,
    downsample_labels,
    propagate_dense,
    propagate_local,
    propagate_memories,
    propagate_step,
    upsample_labels,
)
from corr_core.propagation.memory import FrameMemory, grouped_topk, select_topk
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
        ("long_term_every", -1),
        ("long_term_size", 0),
        ("long_term_radius", 0.0),
        ("fusion_lambda", -1.0),
        ("fusion_lambda", float("nan")),
        ("input_scale", 0.0),
        ("input_scale", 20.0),
        ("input_scale", True),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        PropagationConfig(**{field: value})


def test_config_defaults_and_from_dict():
    cfg = PropagationConfig()
    assert (cfg.topk, cfg.context, cfg.radius, cfg.temperature, cfg.feature_stride) == (10, 20, 12.0, 0.05, 8)
    # CRW protocol by default: one long-term frame (the annotated one), matched over the whole map
    assert (cfg.long_term_every, cfg.long_term_size, cfg.long_term_radius) == (0, 1, math.inf)
    assert cfg.fusion_lambda == 1.75  # SFC Table 0.A.2, DAVIS
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
    (40, 40, 2, 3, math.inf, 10, 1, False, 0),  # whole-map matching ranks cells in groups
    (40, 40, 2, 3, 20.0, 10, 1, False, 6),  # windows so large that their cells are ranked in groups
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


@pytest.mark.parametrize(
    "p, m, k, group",
    [(5000, 7, 10, 32), (1283, 3, 1, 16), (2000, 4, 10, 8), (40, 4, 40, 8), (700, 5, 10, 32)],
)
def test_grouped_topk_equals_topk(p, m, k, group):
    g = torch.Generator().manual_seed(p)
    x = torch.randperm(p * m, generator=g).float().reshape(p, m)  # distinct values
    x[::7] = float("-inf")  # rows nobody may pick
    x[: p - 3, 0] = float("-inf")  # column 0: only 3 rows left, fewer than k for most cases
    values, rows = grouped_topk(x, k, group)
    ref_values, ref_rows = x.topk(k, dim=0)
    assert torch.equal(values, ref_values)
    finite = torch.isfinite(ref_values)
    assert torch.equal(rows[finite], ref_rows[finite])
    assert ((rows >= 0) & (rows < p)).all()


def test_select_topk_ranks_cells_by_their_best_frame_exactly():
    """Top-k cells by their maximum over the frames, then top-k of their entries == top-k of all."""
    p, s, m, k = 60, 5, 9, 7
    g = torch.Generator().manual_seed(0)
    scores = torch.randperm(p * s * m, generator=g).float().reshape(p, s, m)
    blocked = torch.rand(p, m, generator=g) < 0.7
    blocked[:, 3] = True
    blocked[17, 3] = False  # column 3: one cell, fewer entries (5) than k
    values, cells, slots = select_topk(scores.clone(), k, blocked)
    ref = scores.masked_fill(blocked[:, None, :], float("-inf")).reshape(p * s, m).topk(k, dim=0)
    assert torch.equal(values, ref.values)
    finite = torch.isfinite(ref.values)
    assert torch.equal((cells * s + slots)[finite], ref.indices[finite])
    assert torch.isinf(values[5:, 3]).all() and torch.isfinite(values[:5, 3]).all()


def test_frame_memory_partly_filled_and_ring_ordered_matches_dense():
    """A memory searched while filling up and after a slot was overwritten (ring buffer)."""
    h, w, n, k_obj = 9, 11, 6, 3
    query, ctx = exact_features(n, h, w, seed=21)
    labels = random_labels(n, k_obj, h, w, seed=2)
    cfg = PropagationConfig(topk=6, radius=3.0, tile_size=4)
    mem = FrameMemory(5, ctx.shape[1], (h, w), k_obj)
    for slot in range(3):
        mem.write(slot, ctx[slot], labels[slot])
    got = propagate_memories(query, None, mem, cfg)
    assert (got - propagate_dense(query, ctx[:3], labels[:3], cfg, num_reference=0)).abs().max() <= 1e-5
    for slot in range(3, 5):
        mem.write(slot, ctx[slot], labels[slot])
    mem.write(1, ctx[5], labels[5])  # frame 5 replaces frame 1
    order = [0, 5, 2, 3, 4]
    expected = propagate_dense(query, ctx[order], labels[order], cfg, num_reference=0)
    assert (propagate_memories(query, None, mem, cfg) - expected).abs().max() <= 1e-5
    with pytest.raises(ShapeMismatchError, match="slot"):
        FrameMemory(2, 4, (3, 3), 2).write(1, torch.zeros(4, 3, 3), torch.zeros(2, 3, 3))


@pytest.mark.parametrize("long_radius, restrict", [(5.0, False), (2.0, False), (2.5, True)])
def test_long_term_frames_are_matched_within_their_own_radius(long_radius, restrict):
    h, w, n = 10, 12, 5
    query, ctx = exact_features(n, h, w, seed=4)
    labels = random_labels(n, 4, h, w, seed=4)
    cfg = PropagationConfig(topk=8, radius=3.0, long_term_radius=long_radius, restrict_reference=restrict)
    dense = propagate_dense(query, ctx, labels, cfg, num_reference=2)
    local = propagate_local(query, ctx, labels, cfg, num_reference=2)
    assert (dense - local).abs().max().item() <= 1e-5
    unrestricted = propagate_dense(query, ctx, labels, PropagationConfig(topk=8, radius=3.0), num_reference=2)
    assert (dense - unrestricted).abs().max().item() > 1e-3  # the long-term radius does change matches


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
    # ... or a long-term radius of its own (MAST/MER long-term memory searched over a window).
    assert (
        predicted(PropagationConfig(topk=1, radius=5.0, method=method, long_term_radius=5.0), ctx, labels, 1)
        == 2
    )
    assert (
        predicted(PropagationConfig(topk=1, radius=5.0, method=method, long_term_radius=9.0), ctx, labels, 1)
        == 1
    )


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


def test_bf16_matching_halves_the_memory_and_tracks_as_float32_does():
    """``match_precision: bf16`` (the node's CPU speed setting): same labels on a moving scene,
    context features held in bfloat16 (half the bytes); the option maps to ``PropagationConfig.dtype`` and
    an unknown value is named."""
    from corr_core.errors import ConfigError
    from corr_core.options import propagation_settings

    assert propagation_settings({"match_precision": "bf16"}) == {"dtype": "bfloat16"}
    assert propagation_settings({"match_precision": "fp32"}) == {"dtype": None}
    with pytest.raises(ConfigError, match="match_precision.*'bf61'"):
        propagation_settings({"match_precision": "bf61"})
    trackers = {p: Tracker(ColorCells(), PropagationConfig(topk=5, context=3, radius=4.0,
                                                           **propagation_settings({"match_precision": p})))
                for p in ("fp32", "bf16")}
    for t in range(6):
        frame, masks = render(64, 96, moving_boxes(t))
        outs = {p: tr.step(frame, masks if t == 0 else None) for p, tr in trackers.items()}
        assert np.array_equal(outs["fp32"], outs["bf16"]), f"frame {t}"
    mem16, mem32 = trackers["bf16"].memory, trackers["fp32"].memory
    assert mem16.short.keys.dtype == torch.bfloat16 and mem16.short.keys.nbytes * 2 == mem32.short.keys.nbytes


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
    assert tracker.memory_frames == 4 and tracker.short_term_frames == (47, 48, 49)
    assert tracker.long_term_frames == (0,)
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


def test_tracker_widens_the_output_dtype_for_later_masks_with_larger_ids():
    """A uint16 mask with ids above 255 after a uint8 one re-anchors; outputs become uint16 (the
    first mask's type used to cap the ids and the second mask was refused)."""
    frame, masks = render(64, 96, moving_boxes(0))
    tracker = Tracker(ColorCells())
    assert tracker.step(frame, masks).dtype == np.uint8
    wide = masks.astype(np.uint16) * 300
    out = tracker.step(frame, wide)
    assert out.dtype == np.uint16 and np.array_equal(out, wide)
    nxt = tracker.step(render(64, 96, moving_boxes(1))[0])
    assert nxt.dtype == np.uint16 and set(np.unique(nxt)) <= {0, *np.unique(wide).tolist()}
    assert set(tracker.object_ids) >= set(np.unique(wide).tolist()) - {0}


def test_tracker_update_config_applies_live_settings_and_guards_the_stream():
    frame, masks = render(64, 96, moving_boxes(0))
    tracker = Tracker(ColorCells(), PropagationConfig(topk=10, context=2))
    tracker.step(frame, masks)
    assert tracker.update_config(topk=3, radius=4.0).topk == 3
    assert tracker.cfg.topk == 3 and tracker.cfg.radius == 4.0
    tracker.step(render(64, 96, moving_boxes(1))[0])
    tracker.update_config(context=5)  # sizes the memory: used at the next masks
    assert tracker.memory_frames == 1 + 2
    tracker.step(frame, masks)
    assert tracker.memory_frames == 1 + 5
    with pytest.raises(ConfigError, match="reset"):
        tracker.update_config(input_scale=2.0)
    with pytest.raises(ConfigError, match="unknown field"):
        tracker.update_config(topkk=3)
    with pytest.raises(ConfigError, match="topk"):
        tracker.update_config(topk=0)
    assert tracker.cfg.topk == 3
    with pytest.raises(AttributeError):
        tracker.cfg = PropagationConfig()  # read-only: settings change through update_config
    tracker.reset()
    assert tracker.update_config(input_scale=2.0).input_scale == 2.0


def test_tracker_long_term_memory_keeps_first_and_every_nth_frame():
    """MER/MAST memory: first frame + every 3rd frame (at most 3), plus the last 2 frames;
    the tracker's soft labels equal a hand-run dense loop over exactly those frames."""
    h, w, m = 7, 9, 2
    cfg = PropagationConfig(
        topk=5,
        context=m,
        radius=3.0,
        long_term_every=3,
        long_term_size=3,
        long_term_radius=4.0,
        pad_context=False,
    )
    g = torch.Generator().manual_seed(5)
    feats = [F.normalize(torch.randn(8, h, w, generator=g), dim=0) for _ in range(14)]
    masks = np.zeros((h * 8, w * 8), np.uint8)
    masks[8:32, 16:48] = 4
    tracker = Tracker.from_features(cfg)
    tracker.step_features(feats[0], masks)
    soft = {0: tracker.soft_labels}
    long_term, sizes = {}, set()
    for t in range(1, 14):
        expect_long = [0] + [i for i in range(3, t, 3)][-2:]  # first + the 2 newest every-3rd frames
        expect_short = list(range(max(1, t - m), t))
        ctx_f = torch.stack([feats[i] for i in expect_long + expect_short])
        ctx_l = torch.stack([soft[i] for i in expect_long + expect_short])
        expected = propagate_dense(feats[t], ctx_f, ctx_l, cfg, num_reference=len(expect_long))
        tracker.step_features(feats[t])
        assert torch.allclose(tracker.soft_labels, expected, atol=1e-5), f"frame {t}"
        soft[t] = tracker.soft_labels
        long_term[t] = tracker.long_term_frames
        sizes.add(tracker.memory_bytes)
        assert tracker.memory_frames <= 3 + m
    assert long_term[2] == (0,) and long_term[3] == (0, 3) and long_term[6] == (0, 3, 6)
    assert long_term[9] == (0, 6, 9) and long_term[13] == (0, 9, 12)
    assert tracker.short_term_frames == (12, 13)
    assert len(sizes) == 1  # allocated once: nothing grows with the stream

    # New masks: both memories restart from the annotated frame.
    tracker.step_features(feats[0], masks)
    assert tracker.long_term_frames == (14,) and tracker.short_term_frames == ()
    tracker.step_features(feats[1])
    assert tracker.long_term_frames == (14,) and tracker.short_term_frames == (15,)


def test_tracker_local_and_dense_methods_agree_over_a_stream():
    """The tracker's cached memories (local) and the stacked dense path give the same stream."""
    model = ColorCells()
    base = dict(topk=5, context=3, radius=4.0, long_term_every=2, long_term_size=2)
    local = Tracker(model, PropagationConfig(**base))
    dense = Tracker(model, PropagationConfig(**base, method="dense"))
    for t in range(6):
        frame, masks = render(64, 96, moving_boxes(t))
        given = masks if t == 0 else None
        assert np.array_equal(local.step(frame, given), dense.step(frame, given))
        assert torch.allclose(local.soft_labels, dense.soft_labels, atol=1e-5)
    assert local.long_term_frames == dense.long_term_frames == (0, 4)


# --------------------------------------------------------------------------------------------
# SFC feature fusion
# --------------------------------------------------------------------------------------------


class ProjectedCells(torch.nn.Module):
    """A fixed random 1x1 projection of mean RGB per ``stride`` cell (a stand-in fine-grained model)."""

    def __init__(self, stride: int, channels: int = 5, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(channels, 3, 1, 1, generator=g))
        self.stride = stride
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.avg_pool2d(x, self.stride, ceil_mode=True), self.weight)


def test_fusion_with_lambda_zero_equals_the_semantic_model():
    cfg = PropagationConfig(topk=5, context=2, radius=4.0, fusion_lambda=0.0)
    fused = Tracker.from_models(ColorCells(), ProjectedCells(8), cfg)
    alone = Tracker(ColorCells(), PropagationConfig(topk=5, context=2, radius=4.0))
    for t in range(4):
        frame, masks = render(64, 96, moving_boxes(t))
        given = masks if t == 0 else None
        assert np.array_equal(fused.step(frame, given), alone.step(frame, given))
        assert torch.allclose(fused.soft_labels, alone.soft_labels, atol=1e-6)
    # lambda follows the config (the node changes settings between frames)
    fused.update_config(fusion_lambda=2.0)
    fused.step(render(64, 96, moving_boxes(4))[0])
    assert fused.model.lam.item() == 2.0


def test_fused_features_follow_eq7_on_the_finer_grid():
    """[L2Norm(Fs), lambda * L2Norm(Ff)] re-normalised; the stride-8 map is resized to stride 4."""
    sem, fine, lam = ColorCells(), ProjectedCells(4, channels=5), 1.75
    model = FusedFeatures(sem, fine, lam)
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert out.shape == (2, 3 + 5, 8, 12)
    assert torch.allclose(out.norm(dim=1), torch.ones(2, 8, 12), atol=1e-6)
    fs = F.normalize(F.interpolate(sem(x), size=(8, 12), mode="bilinear", align_corners=False), dim=1)
    ff = F.normalize(fine(x), dim=1)
    a, b = (0, slice(None), 1, 2), (1, slice(None), 5, 7)
    expected = (fs[a] @ fs[b] + lam**2 * (ff[a] @ ff[b])) / (1 + lam**2)
    assert torch.allclose(out[a] @ out[b], expected, atol=1e-6)
    assert model.stride is None and model.out_channels is None  # ColorCells declares neither
    both = FusedFeatures(ProjectedCells(8, channels=3), fine)
    assert both.stride == 4 and both.out_channels == 8 and both(x).shape == (2, 8, 8, 12)
    with pytest.raises(ConfigError, match="lambda"):
        model.set_lambda(-1.0)
    # A tracker on the fused model works on the finer grid.
    tracker = Tracker.from_models(
        sem, fine, PropagationConfig(topk=5, context=2, radius=6.0, feature_stride=4)
    )
    frame, masks = render(64, 96, moving_boxes(0))
    tracker.step(frame, masks)
    out = tracker.step(render(64, 96, moving_boxes(1))[0])
    assert tracker.soft_labels.shape == (3, 16, 24) and set(np.unique(out)) == {0, 3, 7}


def small_boxes(t: int) -> dict[int, tuple[int, int, int, int]]:
    """Objects of 6x6 and 6x10 pixels: less than one 8x8 feature cell across."""
    return {3: (13, 10 + 4 * t, 6, 6), 7: (41, 60 - 4 * t, 6, 10)}


@pytest.mark.parametrize("mode", ["stretch", "grid"])
def test_input_scale_tracks_objects_smaller_than_a_feature_cell(mode):
    class Recording(ColorCells):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen = tuple(x.shape[-2:])
            return super().forward(x)

    ious = {}
    for scale in (1.0, 2.0):
        model = Recording()
        cfg = PropagationConfig(topk=5, context=2, radius=4.0, label_resize=mode, input_scale=scale)
        tracker = Tracker(model, cfg)
        frame, masks = render(64, 96, small_boxes(0))
        tracker.step(frame, masks)
        scores = []
        for t in range(1, 5):
            frame, masks = render(64, 96, small_boxes(t))
            out = tracker.step(frame)
            assert out.shape == (64, 96)  # labels come back at the frame's size
            scores += [iou(out == oid, masks == oid) for oid in (3, 7)]
        assert model.seen == (round(64 * scale), round(96 * scale))
        ious[scale] = float(np.mean(scores))
    assert ious[2.0] > 0.6 and ious[2.0] > ious[1.0] + 0.2, ious
