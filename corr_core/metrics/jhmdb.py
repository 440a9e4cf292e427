"""JHMDB keypoint propagation and PCK, with the protocol of CRW and UVC.

The reference is the CRW evaluation (``ajabri/videowalk``: ``code/data/jhmdb.py`` builds the label
maps, ``code/utils/test_utils.py::process_pose`` reads keypoints back, ``code/eval/eval_pck.py``
scores them); UVC's ``eval_pck.py`` (``Liusifei/UVC``) is the same script. What it does, and what
this module reproduces:

**Label maps** (:func:`keypoints_to_label_maps`). Joint ``j`` at 0-based pixel ``(x, y)`` goes to
feature-grid coordinates ``(x * w / W, y * h / H)`` -- no half-cell offset: pixel ``i * stride`` is
cell ``i``. Each joint gets its own channel holding an *unnormalised* Gaussian with peak value 1
(``sigma = 0.5`` cells, CRW's and UVC's default), drawn as in the stacked-hourglass
``draw_labelmap``: a ``ceil(6 sigma + 1)``-wide patch centred on ``int(p - 3 sigma) + (6 sigma + 1)
// 2``, where ``int`` truncates toward zero, pasted (not added) into the map and clipped at the
border. With ``sigma = 0.5`` this puts the peak on ``round(p)`` for ``p >= 1.5`` and covers offsets
``-2..+1`` around it (neighbours ``exp(-2)``, diagonals ``exp(-4)``). The propagated label tensor
also carries a background channel first, 1 where no joint map is non-zero
(``add_background=True``).

**Read-back** (:func:`label_maps_to_keypoints`). For each joint channel (background dropped), the
``topk = 3`` largest values of the flattened map are normalised to sum to 1 and the joint is their
weighted mean position ``(index % w, index // w)`` in cells; a channel that sums to 0 gives -1
("not visible"). ``eval_pck.py`` maps cells back to pixels as ``cell / feat_res * W`` with
``feat_res = 40`` (the 320-pixel input at stride 8), i.e. ``cell * W / w`` here -- the same
corner convention as on the way in, so the round trip has no systematic shift. Ties among equal
values are broken towards the lower flat (row-major) index; the reference leaves the order of
ties to ``torch.topk``.

**PCK** (:func:`pck`, :class:`PCKAccumulator`). Per frame ``k`` the reference size is
``0.6 * ||(max x, max y) - (min x, min y)||`` over the ground-truth joints counted in that frame,
with the reference's initial values (``max`` starts at -1, ``min`` at 1e6). A joint counts when
its *prediction* is visible (``x >= 0``; the reference drops a joint whose predicted ``x < 0``)
and the frame is not the first one of its video (``k == 0`` is the given annotation). Its
normalised error is ``||pred - gt|| / size_k`` and it is correct when this is ``<= threshold``.
Errors are pooled **per joint** over every counted (video, frame) pair of the whole data set;
PCK of joint ``j`` is ``correct_j / counted_j``, and the reported PCK is the unweighted mean over
the 15 joints (``computePCK``: ``np.mean(pckAll[0:15])``; the pooled-over-joints alternative
``nCorrect / nTotal`` is commented out there and never reported). A joint that is never counted
makes the reference divide by zero; here its PCK is NaN and the mean skips it (``nanmean``).
Values are fractions in ``[0, 1]``; the reference prints percentages (multiply by 100).

Ground truth must be in the same 0-based pixel frame as the predictions; both scripts subtract 1
from the MATLAB ``pos_img`` (see :mod:`corr_core.data.jhmdb`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from corr_core.errors import ConfigError, ShapeMismatchError

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_SIGMA = 0.5
DEFAULT_TOPK = 3
#: Fraction of the ground-truth joints' bounding-box diagonal used as the PCK reference size.
BBOX_FACTOR = 0.6
REFERENCES = ("bbox",)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "PCKAccumulator",
    "keypoints_to_label_maps",
    "label_maps_to_keypoints",
    "pck",
    "reference_sizes",
]


# --------------------------------------------------------------------------------------------
# Label maps
# --------------------------------------------------------------------------------------------


def _size2(size: Sequence[int], what: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must be (height, width), got {size!r}") from exc
    if h <= 0 or w <= 0:
        raise ConfigError(f"{what} must be positive, got {size!r}")
    return h, w


def _gaussian_patch(sigma: float) -> np.ndarray:
    """The reference's un-normalised Gaussian patch: peak 1 at index ``(6 sigma + 1) // 2``."""
    size = 6 * sigma + 1
    x = np.arange(0, size, 1, dtype=np.float64)
    c = size // 2
    return np.exp(-((x[None, :] - c) ** 2 + (x[:, None] - c) ** 2) / (2 * sigma**2))


def _paste_gaussian(out: np.ndarray, px: float, py: float, patch: np.ndarray, sigma: float) -> None:
    """Pastes ``patch`` into ``out`` at the reference's (truncated) window for point ``(px, py)``."""
    h, w = out.shape
    ul = (int(px - 3 * sigma), int(py - 3 * sigma))  # int() truncates toward zero, as the reference
    br = (int(px + 3 * sigma + 1), int(py + 3 * sigma + 1))
    if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
        return
    gx = (max(0, -ul[0]), min(br[0], w) - ul[0])
    gy = (max(0, -ul[1]), min(br[1], h) - ul[1])
    ix = (max(0, ul[0]), min(br[0], w))
    iy = (max(0, ul[1]), min(br[1], h))
    out[iy[0] : iy[1], ix[0] : ix[1]] = patch[gy[0] : gy[1], gx[0] : gx[1]]


def keypoints_to_label_maps(
    kps: np.ndarray,
    image_size: Sequence[int],
    feat_size: Sequence[int],
    sigma: float = DEFAULT_SIGMA,
    add_background: bool = False,
) -> np.ndarray:
    """Gaussian label maps of keypoints at feature resolution, as CRW builds them for JHMDB.

    Args:
        kps: ``(J, 2)`` keypoints ``(x, y)`` in 0-based image pixels. A non-finite keypoint gives
            an all-zero map.
        image_size: ``(H, W)`` of the image the keypoints refer to.
        feat_size: ``(h, w)`` of the feature grid.
        sigma: Gaussian width in feature cells (0.5 in CRW and UVC). ``sigma <= 0`` sets the single
            cell ``(int(x), int(y))`` to 1, as the reference does.
        add_background: prepend the background channel (1 where every joint map is 0), as the
            propagated label tensor of the reference has.

    Returns:
        ``(J, h, w) float32`` maps (``(J + 1, h, w)`` with the background channel first), peak
        value 1 (module docstring gives the exact window).

    Raises:
        ShapeMismatchError: if ``kps`` is not ``(J, 2)``.
        ConfigError: if a size is not two positive integers.
    """
    kps = np.asarray(kps, dtype=np.float64)
    if kps.ndim != 2 or kps.shape[1] != 2:
        raise ShapeMismatchError(f"keypoints must have shape (J, 2), got {kps.shape}")
    img_h, img_w = _size2(image_size, "image_size")
    h, w = _size2(feat_size, "feat_size")
    cells = kps * np.array([w / img_w, h / img_h])
    maps = np.zeros((kps.shape[0], h, w), dtype=np.float64)
    patch = _gaussian_patch(sigma) if sigma > 0 else None
    for j, (cx, cy) in enumerate(cells):
        if not (math.isfinite(cx) and math.isfinite(cy)):
            continue
        if patch is not None:
            _paste_gaussian(maps[j], cx, cy, patch, sigma)
        else:
            tx, ty = int(cx), int(cy)
            if 0 <= tx < w and 0 <= ty < h:
                maps[j, ty, tx] = 1.0
    if add_background:
        background = (maps.sum(axis=0) == 0).astype(np.float64)[None]
        maps = np.concatenate([background, maps], axis=0)
    return maps.astype(np.float32)


def label_maps_to_keypoints(
    maps: np.ndarray, image_size: Sequence[int], topk: int = DEFAULT_TOPK
) -> np.ndarray:
    """Reads keypoints back from (propagated) joint label maps, as CRW's ``process_pose``.

    Args:
        maps: ``(J, h, w)`` non-negative joint maps, without the background channel.
        image_size: ``(H, W)`` of the image to map the keypoints to.
        topk: how many of the largest values of each map are averaged (3 in CRW).

    Returns:
        ``(J, 2) float64`` keypoints ``(x, y)`` in 0-based image pixels; ``(-1, -1)`` for a joint
        whose map sums to 0 (not visible).

    Raises:
        ShapeMismatchError: if ``maps`` is not 3-D.
        ConfigError: if ``topk < 1`` or ``image_size`` is invalid.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ShapeMismatchError(f"joint maps must have shape (J, h, w), got {maps.shape}")
    if int(topk) < 1:
        raise ConfigError(f"topk must be >= 1, got {topk}")
    img_h, img_w = _size2(image_size, "image_size")
    n_joints, h, w = maps.shape
    flat = maps.reshape(n_joints, h * w)
    k = min(int(topk), h * w)
    ids = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    vals = np.take_along_axis(flat, ids, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = vals / vals.sum(axis=1, keepdims=True)
    cell_x = (weights * (ids % w)).sum(axis=1)
    cell_y = (weights * (ids // w)).sum(axis=1)
    out = np.stack([cell_x * (img_w / w), cell_y * (img_h / h)], axis=1)
    out[flat.sum(axis=1) == 0] = -1.0
    return out


# --------------------------------------------------------------------------------------------
# PCK
# --------------------------------------------------------------------------------------------


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if gt.ndim != 3 or gt.shape[-1] != 2:
        raise ShapeMismatchError(f"ground-truth keypoints must have shape (T, J, 2), got {gt.shape}")
    if pred.shape != gt.shape:
        raise ShapeMismatchError(
            f"predicted keypoints have shape {pred.shape} but ground truth has {gt.shape}"
        )


def _visibility(pred: np.ndarray, visible: np.ndarray | None) -> np.ndarray:
    if visible is None:
        return ~(pred[..., 0] < 0)  # the reference drops x < 0 only; NaN stays in (and fails)
    visible = np.asarray(visible, dtype=bool)
    if visible.shape != pred.shape[:2]:
        raise ShapeMismatchError(f"visibility must have shape {pred.shape[:2]}, got {visible.shape}")
    return visible


def reference_sizes(gt: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """Per-frame PCK reference size: ``0.6 * diagonal`` of the counted GT joints' bounding box.

    Args:
        gt: ``(T, J, 2)`` ground-truth keypoints in pixels.
        visible: ``(T, J)`` bool, the joints that enter the box (default all).

    Returns:
        ``(T,) float64``. As in the reference, ``max`` starts at -1 and ``min`` at 1e6, so a frame
        with no counted joint gets ``0.6 * ||(-1, -1) - (1e6, 1e6)||`` (never used).
    """
    gt = np.asarray(gt, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[-1] != 2:
        raise ShapeMismatchError(f"ground-truth keypoints must have shape (T, J, 2), got {gt.shape}")
    vis = np.ones(gt.shape[:2], dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    if vis.shape != gt.shape[:2]:
        raise ShapeMismatchError(f"visibility must have shape {gt.shape[:2]}, got {vis.shape}")
    m = vis[..., None]
    hi = np.maximum(np.max(np.where(m, gt, -np.inf), axis=1, initial=-np.inf), -1.0)
    lo = np.minimum(np.min(np.where(m, gt, np.inf), axis=1, initial=np.inf), 1e6)
    return BBOX_FACTOR * np.linalg.norm(hi - lo, axis=-1)


class PCKAccumulator:
    """PCK pooled over videos, per joint, with the CRW/UVC ``eval_pck.py`` rules.

    Add one video at a time with :meth:`add`; :meth:`summary` gives the mean over joints of the
    per-joint PCK at each threshold (module docstring has the exact rules).

    Args:
        thresholds: fractions of the reference size (``distance <= thr * size`` is correct).
        ref: the reference size; only ``"bbox"`` (the reference's ``0.6 *`` bbox diagonal).
    """

    def __init__(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, ref: str = "bbox") -> None:
        if ref not in REFERENCES:
            raise ConfigError(f"PCK reference must be one of {REFERENCES}, got {ref!r}")
        self.thresholds = tuple(float(t) for t in thresholds)
        if not self.thresholds:
            raise ConfigError("PCK needs at least one threshold")
        self.ref = ref
        self._correct: np.ndarray | None = None  # (n_thr, J) int64
        self._counted: np.ndarray | None = None  # (J,) int64
        self.num_videos = 0

    def add(self, pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None) -> None:
        """Adds one video.

        Args:
            pred: ``(T, J, 2)`` predicted keypoints in pixels; frame 0 is the given annotation and
                is not scored. A joint with ``x < 0`` counts as not predicted and is skipped.
            gt: ``(T, J, 2)`` ground truth in the same pixel frame.
            visible: optional ``(T, J)`` bool overriding the ``x >= 0`` rule.

        Raises:
            ShapeMismatchError: on mismatched shapes or a joint count different from earlier videos.
        """
        pred = np.asarray(pred, dtype=np.float64)
        gt = np.asarray(gt, dtype=np.float64)
        _check_pair(pred, gt)
        vis = _visibility(pred, visible)
        n_joints = gt.shape[1]
        if self._counted is None:
            self._counted = np.zeros(n_joints, dtype=np.int64)
            self._correct = np.zeros((len(self.thresholds), n_joints), dtype=np.int64)
        elif self._counted.shape[0] != n_joints:
            raise ShapeMismatchError(
                f"video has {n_joints} joints, earlier videos had {self._counted.shape[0]}"
            )
        sizes = reference_sizes(gt, vis)
        with np.errstate(invalid="ignore", divide="ignore"):
            dnorm = np.linalg.norm(pred - gt, axis=-1) / sizes[:, None]
        counted = vis.copy()
        counted[0] = False  # the first frame is the given annotation
        self._counted += counted.sum(axis=0)
        for i, thr in enumerate(self.thresholds):
            self._correct[i] += (counted & (dnorm <= thr)).sum(axis=0)
        self.num_videos += 1

    def per_joint(self) -> np.ndarray:
        """``(n_thresholds, J) float64`` PCK of each joint (NaN for a joint never counted)."""
        if self._counted is None:
            raise ShapeMismatchError("PCK has no video added yet")
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._correct / self._counted[None, :].astype(np.float64)

    def summary(self) -> dict[str, float]:
        """``{"PCK@0.1": ..., ...}``: mean over joints of the per-joint PCK, as fractions.

        Also holds ``"num_videos"`` and ``"num_counted"`` (joint-frames scored). NaN everywhere
        when nothing was counted.
        """
        if self._counted is None:
            values = np.full(len(self.thresholds), np.nan)
            counted = 0
        else:
            per_joint = self.per_joint()
            valid = self._counted > 0
            values = (
                per_joint[:, valid].mean(axis=1) if valid.any() else np.full(len(self.thresholds), np.nan)
            )
            counted = int(self._counted.sum())
        out = {f"PCK@{t:g}": float(v) for t, v in zip(self.thresholds, values, strict=True)}
        out["num_videos"] = float(self.num_videos)
        out["num_counted"] = float(counted)
        return out


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ref: str = "bbox",
    visible: np.ndarray | None = None,
) -> dict[str, float]:
    """PCK of one video (see :class:`PCKAccumulator` to pool a data set, as the reference does).

    Args:
        pred: ``(T, J, 2)`` predicted keypoints ``(x, y)`` in pixels (``x < 0``: not predicted).
        gt: ``(T, J, 2)`` ground-truth keypoints in the same frame.
        thresholds: fractions of the per-frame reference size.
        ref: ``"bbox"``: ``0.6 *`` the diagonal of the GT joints' bounding box in that frame.
        visible: optional ``(T, J)`` bool overriding the ``x >= 0`` rule.

    Returns:
        ``{"PCK@0.1": ..., ..., "num_videos": 1.0, "num_counted": n}``, PCK as fractions.
    """
    acc = PCKAccumulator(thresholds, ref=ref)
    acc.add(pred, gt, visible=visible)
    return acc.summary()
