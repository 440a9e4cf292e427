"""Object proposals: class-agnostic masks of the things in an image, behind one interface.

A proposer maps an ``(H, W, 3) uint8`` RGB image (and, where a camera gives it, an ``(H, W)``
depth map) to :class:`Proposals`: ``(N, H, W)`` boolean masks with a score each. Cross-view
correspondence (PCC) pseudo-labels and matches over proposals. Three proposers:

* ``graph`` (:class:`~corr_core.proposals.graph.GraphProposer`): weight-free, runs anywhere:
  graph-based segmentation (Felzenszwalb & Huttenlocher) of colour (and depth) at several
  scales, filtered by size and de-duplicated;
* ``sam`` (:class:`~corr_core.proposals.sam.SamProposer`): segment-anything's automatic mask
  generator on a SAM checkpoint the user gives (loaded without unpickling);
* ``oracle`` (:class:`~corr_core.proposals.oracle.OracleProposer`): the ground-truth instance
  masks of a simulated scene; for diagnostics only, reported apart, never as a headline.

Build one by name with :func:`build_proposer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corr_core.errors import ConfigError
from corr_core.proposals.base import Proposals, Proposer

PROPOSERS: dict[str, Callable[..., Proposer]] = {}


def register_proposer(name: str) -> Callable[[Callable[..., Proposer]], Callable[..., Proposer]]:
    """Decorator adding a proposer builder to :data:`PROPOSERS` under ``name``."""

    def wrap(fn: Callable[..., Proposer]) -> Callable[..., Proposer]:
        if name in PROPOSERS:
            raise ValueError(f"proposer {name!r} registered twice")
        PROPOSERS[name] = fn
        return fn

    return wrap


def build_proposer(name: str, **kwargs: Any) -> Proposer:
    """Builds a registered proposer.

    Raises:
        ConfigError: unknown name or bad arguments. CheckpointError: (sam) a bad checkpoint.
    """
    _load_builtin()
    if name not in PROPOSERS:
        raise ConfigError(f"unknown proposer {name!r}; known: {sorted(PROPOSERS)}")
    try:
        return PROPOSERS[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"proposer {name!r}: bad arguments ({exc})") from exc


def _load_builtin() -> None:
    from corr_core.proposals import graph, oracle, sam  # noqa: F401  (they register themselves)


__all__ = ["PROPOSERS", "Proposals", "Proposer", "build_proposer", "register_proposer"]
