"""Cross-view object correspondence: find the objects of one camera in another.

:class:`~corr_core.crossview.matcher.CrossViewMatcher` (PCC's correspondence model) and
:class:`~corr_core.crossview.baseline.FeatureMatcher` (nearest neighbour of mask-pooled features
over object proposals, the baseline) share one protocol, :class:`~corr_core.crossview.base.Matcher`:

    result = matcher.match(src_rgb, src_labels, tgt_rgb)
    result.labels       # (H2, W2) ids of src_labels, found in the target (0 elsewhere)
    result.existence    # {id: bool}: is the object visible in the target?
    result.confidence   # {id: float in [0, 1]}

Numpy at the edges (``(H, W, 3) uint8`` RGB, ``(H, W)`` integer label maps), ids kept. Evaluation
(``corr eval crossview``), ``corr_node`` and the demo all go through it.
"""

from corr_core.crossview.base import Matcher, MatchResult

__all__ = ["MatchResult", "Matcher"]
