"""Settings of CRW label propagation, :class:`PropagationConfig`, without importing torch.

Kept apart from the propagation code (:mod:`corr_core.propagation.crw`) so that the command line,
the ROS parameter tables and recipe files can read and validate the settings (and ``corr --help``
answers) without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from corr_core.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DTYPES", "LABEL_RESIZE", "METHODS", "PropagationConfig"]

METHODS = ("local", "dense")
LABEL_RESIZE = ("stretch", "grid")
#: Names accepted by ``PropagationConfig.dtype`` (torch dtypes of the same name).
DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass
class PropagationConfig:
    """Hyper-parameters of CRW label propagation (defaults: SFC Table 0.A.1, DAVIS column).

    Attributes:
        topk: number of context positions kept per target position (over all context frames).
        context: ``m``, number of preceding frames (with predicted soft labels) in the context.
        radius: spatial radius ``r'`` in feature cells; a context position is a candidate when its
            Euclidean distance to the target position is strictly smaller (CRW's ``D < radius``).
            ``math.inf`` disables the restriction.
        temperature: affinities are divided by it before the softmax (CRW README: 0.05).
        feature_stride: stride of the feature map w.r.t. the frame (the tracker checks the model's
            output size against it).
        method: ``"local"`` (memory-efficient, default) or ``"dense"`` (reference).
        restrict_reference: also apply the radius to the reference (first) frame. CRW does not.
        pad_context: start the short-term memory with ``context`` copies of the reference frame,
            as CRW's data loader does (it repeats the first frame ``videoLen`` times).
        dtype: dtype of the feature dot products (``"float16"``/``"bfloat16"`` are meant for CUDA);
            ``None`` uses the features' dtype. Top-k and softmax always run in float32 or wider.
        label_resize: how label maps go between frame and feature grid when the frame size is not
            a multiple of ``feature_stride``. ``"stretch"`` (CRW): resize the whole frame onto the
            grid and back. ``"grid"``: cell ``i`` covers pixels ``[s*i, s*(i+1))`` as in a padded
            stride-``s`` network: labels are edge-padded (or cropped) to ``grid * s`` pixels before
            the resize, predictions cropped (or edge-padded) after it. Identical when the size
            is a multiple of the stride.
        tile_size: side of the query tiles of the local implementation (speed knob only; 0 picks
            one from the map size, radius, channels and context length).
        max_block_elements: upper bound on the elements of one affinity block of unrestricted
            matching (memory knob only).
        long_term_every: long-term memory as in MER (seed 002, Sec. 4.1 "Testing": a long-term
            memory of early frames, e.g. the first and the fifth, used together with a
            short-term memory of the last frames; "the concurrent utilization of both long-term
            and short-term memories proves to be essential") and MAST (Lai et al., CVPR 2020, MER's
            [19]: a long-term memory of sparse past frames searched over a large area). Every ``long_term_every``-th frame after the annotated one joins the
            long-term set with its predicted soft labels. 0 (default): the long-term set is the
            annotated frame alone, the CRW/SFC protocol.
        long_term_size: ``L``, the most frames in the long-term set, the annotated frame included
            (it always stays; when the set is full, its oldest other frame makes room).
        long_term_radius: radius (feature cells) within which long-term frames are matched;
            ``math.inf`` (default): the whole image, as CRW matches its reference frame and MAST
            its long-term memory (a large window). Ignored with ``restrict_reference`` (then
            ``radius`` applies). The short-term set (the last ``context`` frames) always uses
            ``radius``.
        fusion_lambda: ``lambda`` of SFC's feature fusion (seed 004, Sec. 3.4, eq. 7),
            ``F = [L2Norm(F_s), lambda * L2Norm(F_f)]`` re-normalised, used by trackers built from
            a semantic and a fine-grained model
            (:meth:`~corr_core.propagation.tracker.Tracker.from_models`). SFC Table 0.A.2:
            1.75 on DAVIS (with top-k 15, m 20, r' 15), 1.0 on JHMDB and VIP.
        input_scale: frames are resized by this factor (bilinear; antialiased when shrinking)
            before the network, so one feature cell covers ``feature_stride / input_scale`` frame
            pixels. 2 tracks small objects (a few cells across at scale 1) much better at about 4x
            the compute; labels still come back at the frame's own size. ``radius``,
            ``long_term_radius`` and ``tile_size`` stay in feature cells. Read by
            :meth:`~corr_core.propagation.tracker.Tracker.step` and ``encode``; features given to
            ``step_features`` are taken as they are. 1 (default): the CRW/SFC protocol.
    """

    topk: int = 10
    context: int = 20
    radius: float = 12.0
    temperature: float = 0.05
    feature_stride: int = 8
    method: str = "local"
    restrict_reference: bool = False
    pad_context: bool = True
    dtype: str | None = None
    label_resize: str = "stretch"
    tile_size: int = 0
    max_block_elements: int = 1 << 24
    long_term_every: int = 0
    long_term_size: int = 1
    long_term_radius: float = math.inf
    fusion_lambda: float = 1.75
    input_scale: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checks every field.

        Raises:
            ConfigError: naming the first invalid field and its value.
        """
        for name, low in (
            ("topk", 1),
            ("context", 0),
            ("feature_stride", 1),
            ("tile_size", 0),
            ("max_block_elements", 1),
            ("long_term_every", 0),
            ("long_term_size", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"PropagationConfig.{name} must be an integer >= {low}, got {value!r}")
        for name in ("radius", "temperature", "long_term_radius"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or math.isnan(value)
                or value <= 0
            ):
                raise ConfigError(f"PropagationConfig.{name} must be a number > 0, got {value!r}")
        if math.isinf(self.temperature):
            raise ConfigError(f"PropagationConfig.temperature must be finite, got {self.temperature!r}")
        lam = self.fusion_lambda
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
            raise ConfigError(f"PropagationConfig.fusion_lambda must be a finite number >= 0, got {lam!r}")
        scale = self.input_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.125 <= scale <= 8:
            raise ConfigError(f"PropagationConfig.input_scale must be a number in [0.125, 8], got {scale!r}")
        if self.method not in METHODS:
            raise ConfigError(f"PropagationConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.label_resize not in LABEL_RESIZE:
            raise ConfigError(
                f"PropagationConfig.label_resize must be one of {LABEL_RESIZE}, got {self.label_resize!r}"
            )
        for name in ("restrict_reference", "pad_context"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"PropagationConfig.{name} must be true or false, got {getattr(self, name)!r}"
                )
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ConfigError(
                f"PropagationConfig.dtype must be null or one of {list(DTYPES)}, got {self.dtype!r}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PropagationConfig:
        """Builds a config from a mapping (e.g. parsed YAML).

        Raises:
            ConfigError: on an unknown key or an invalid value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"PropagationConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def updated(self, **changes: Any) -> PropagationConfig:
        """A validated copy with ``changes`` applied (the original is left as it is).

        Raises:
            ConfigError: on an unknown field or an invalid value.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"PropagationConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (for resolved-config files)."""
        return asdict(self)

    @property
    def torch_dtype(self) -> torch.dtype | None:
        """``dtype`` as a ``torch.dtype`` (None when unset)."""
        if self.dtype is None:
            return None
        import torch

        return getattr(torch, self.dtype)
