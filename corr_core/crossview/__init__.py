"""Cross-view object correspondence: find the objects of one camera in another.

:class:`~corr_core.crossview.matcher.CrossViewMatcher` (PCC's correspondence model) and the
nearest-neighbour baselines of :mod:`~corr_core.crossview.baseline` (mask-pooled features or colour
statistics over object proposals) share one protocol, :class:`~corr_core.crossview.base.Matcher`:

    result = matcher.match(src_rgb, src_labels, tgt_rgb, geometry=None)  # or ViewGeometry(...)
    result.labels       # (H2, W2) ids of src_labels, found in the target (0 elsewhere)
    result.existence    # {id: bool}: is the object visible in the target?
    result.confidence   # {id: float in [0, 1]}

Numpy at the edges (``(H, W, 3) uint8`` RGB, ``(H, W)`` integer label maps), ids kept. Evaluation
(``corr eval crossview``), ``corr_node`` and the demo all go through it.
"""

from corr_core.crossview.base import Matcher, MatchResult

#: The PCC correspondence model the package ships (``corr_core/assets/checkpoints/<name>``),
#: trained by ``training/pcc_cpu.yaml``; ``corr demo --crossview`` uses it.
SHIPPED_PCC = "pcc_resnet18_l2_prior"

__all__ = ["SHIPPED_PCC", "MatchResult", "Matcher"]
