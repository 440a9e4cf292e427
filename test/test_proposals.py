"""Object proposers: the weight-free graph proposer, segment-anything (a tiny SAM built from its own
modules), the oracle, the proposal file format and bad input."""

from __future__ import annotations

import pickle
from functools import partial

import numpy as np
import pytest
import torch

from corr_core.errors import CheckpointError, ConfigError, DataError, ShapeMismatchError
from corr_core.proposals import build_proposer
from corr_core.proposals.base import Proposals


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy grey-green table with three flat-coloured shaded boxes, and their ids."""
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    img = np.clip(rng.normal(0, 6, (h, w, 3)) + np.array([90, 120, 90]), 0, 255)
    labels = np.zeros((h, w), np.uint8)
    boxes = [((20, 45), (20, 50), (220, 40, 40)), ((60, 95), (70, 100), (40, 60, 220)), ((25, 50), (110, 140), (230, 210, 40))]
    for k, ((y0, y1), (x0, x1), colour) in enumerate(boxes, 1):
        shade = np.linspace(1.0, 0.8, y1 - y0)[:, None, None]
        img[y0:y1, x0:x1] = np.array(colour) * shade
        labels[y0:y1, x0:x1] = k
    return img.astype(np.uint8), labels


def best_iou(props: Proposals, mask: np.ndarray) -> float:
    inter = (props.masks & mask).reshape(len(props), -1).sum(1)
    union = (props.masks | mask).reshape(len(props), -1).sum(1)
    return float((inter / np.maximum(union, 1)).max())


def test_graph_proposer_finds_each_object():
    img, labels = scene()
    props = build_proposer("graph").propose(img)
    assert props.masks.shape[1:] == img.shape[:2] and props.masks.dtype == np.bool_
    assert len(props) == len(props.scores) <= 64
    for k in (1, 2, 3):
        assert best_iou(props, labels == k) > 0.85, f"object {k} not proposed"
    # the three objects score above the texture blobs of the table
    top = props.subset(np.argsort(-props.scores)[:6])
    assert all(best_iou(top, labels == k) > 0.85 for k in (1, 2, 3))


def test_graph_proposer_gives_the_same_proposals_with_threads_and_without():
    img, _ = scene()
    one, many = build_proposer("graph", workers=1).propose(img), build_proposer("graph", workers=3).propose(img)
    assert len(one) > 3
    np.testing.assert_array_equal(one.masks, many.masks)
    np.testing.assert_array_equal(one.scores, many.scores)
    with pytest.raises(ConfigError, match="workers"):
        build_proposer("graph", workers=0)


def test_graph_proposer_uses_depth_where_colour_cannot_tell():
    img = np.full((96, 128, 3), 120, np.uint8)  # one flat colour: colour alone sees no object
    depth = np.full((96, 128), 1.0, np.float32)
    depth[30:50, 40:65] = 0.6  # a box 40 cm nearer
    truth = depth < 1.0
    graph = build_proposer("graph")
    assert len(graph.propose(img)) == 0 or best_iou(graph.propose(img), truth) < 0.5
    assert best_iou(graph.propose(img, depth), truth) > 0.9


def test_graph_proposer_rejects_bad_input():
    graph = build_proposer("graph")
    img, _ = scene()
    with pytest.raises(DataError, match="uint8"):
        graph.propose(img.astype(np.float32))
    with pytest.raises(ShapeMismatchError, match=r"\(H, W, 3\)"):
        graph.propose(img[..., 0])
    with pytest.raises(ShapeMismatchError, match="depth"):
        graph.propose(img, np.ones((10, 10), np.float32))
    with pytest.raises(ConfigError, match="min_area"):
        build_proposer("graph", min_area=0.5, max_area=0.1)
    with pytest.raises(ConfigError, match="unknown proposer 'grpah'"):
        build_proposer("grpah")
    with pytest.raises(ConfigError, match="bad arguments"):
        build_proposer("graph", scale=3)


def test_proposals_file_round_trip_and_damage(tmp_path):
    img, _ = scene()
    props = build_proposer("graph").propose(img)
    np.savez_compressed(tmp_path / "p.npz", **props.to_arrays())
    with np.load(tmp_path / "p.npz") as data:
        back = Proposals.from_arrays(dict(data), "p.npz")
    assert np.array_equal(back.masks, props.masks) and np.array_equal(back.scores, props.scores)
    bad = props.to_arrays()
    bad["size"] = np.array([7, 7])
    with pytest.raises(DataError, match="bad.npz"):
        Proposals.from_arrays(bad, "bad.npz")
    with pytest.raises(DataError, match="not a proposals file"):
        Proposals.from_arrays({"masks": bad["masks"]}, "other.npz")
    empty = Proposals.empty((4, 5))
    assert len(Proposals.from_arrays(empty.to_arrays())) == 0


def test_oracle_proposer_returns_ground_truth_and_needs_it():
    img, labels = scene()
    oracle = build_proposer("oracle", min_pixels=10)
    props = oracle.propose(img, labels=labels)
    assert len(props) == 3 and all(np.array_equal(props.masks[k], labels == k + 1) for k in range(3))
    with pytest.raises(ConfigError, match="ground-truth"):
        oracle.propose(img)


# ------------------------------------------------------------------------------------------ SAM


def tiny_sam():
    """segment-anything's Sam with a 64-pixel, 1-layer image encoder: random weights, same code."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    dim, size, patch = 32, 64, 16
    return Sam(
        image_encoder=ImageEncoderViT(img_size=size, patch_size=patch, embed_dim=dim, depth=1, num_heads=2,
                                      mlp_ratio=2, out_chans=dim, qkv_bias=True,
                                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), window_size=0),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(size // patch, size // patch),
                                     input_image_size=(size, size), mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
                                 transformer_dim=dim, iou_head_depth=1, iou_head_hidden_dim=16),
    )


def test_sam_proposer_runs_segment_anything_on_a_tiny_model():
    img, _ = scene()
    sam = build_proposer("sam", model=tiny_sam(), points_per_side=4, pred_iou_thresh=0.0,
                         stability_score_thresh=0.0, min_area=0.0, max_area=1.0)
    props = sam.propose(img)
    assert isinstance(props, Proposals) and props.masks.shape[1:] == img.shape[:2]
    assert len(props) >= 1 and np.all(np.diff(props.scores) <= 0)  # best predicted IoU first


def test_sam_checkpoints_of_the_wrong_kind_are_refused(tmp_path):
    from corr_core.api import packaged_checkpoint

    with pytest.raises(CheckpointError, match="not found"):
        build_proposer("sam", checkpoint=tmp_path / "missing.pth")
    torch.save(tiny_sam().state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError, match="width 32 is none of"):
        build_proposer("sam", checkpoint=tmp_path / "tiny.pth")
    fc = packaged_checkpoint().with_suffix(".safetensors")
    with pytest.raises(CheckpointError, match="not a segment-anything checkpoint"):
        build_proposer("sam", checkpoint=fc)

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"x": Payload()}))
    with pytest.raises(CheckpointError, match="not a readable SAM checkpoint"):
        build_proposer("sam", checkpoint=tmp_path / "evil.pth")
    with pytest.raises(ConfigError, match="exactly one"):
        build_proposer("sam")


def test_segments_running_off_the_image_rank_below_objects_on_the_table():
    img, labels = scene()
    img[:, :8] = (250, 250, 250)  # a bright wall stripe along the left border
    stripe = np.zeros(labels.shape, bool)
    stripe[:, :8] = True

    def rank(props, truth):
        return int(np.argmax([(m & truth).sum() / (m | truth).sum() for m in props.masks]))

    penalised = build_proposer("graph").propose(img)
    flat = build_proposer("graph", border_penalty=1.0).propose(img)
    assert max(rank(penalised, labels == k) for k in (1, 2, 3)) < 3  # the objects come first
    assert best_iou(penalised, stripe) > 0.7  # the stripe is still proposed ...
    assert rank(penalised, stripe) > rank(flat, stripe) + 5  # ... much further down
