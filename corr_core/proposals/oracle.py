"""The oracle proposer: a simulated scene's ground-truth instance masks (diagnostics only)."""

from __future__ import annotations

import numpy as np

from corr_core.errors import ConfigError
from corr_core.proposals import register_proposer
from corr_core.proposals.base import Proposals, check_image


class OracleProposer:
    """One proposal per ground-truth id (score 1). Reported apart, never as a headline.

    Args:
        min_pixels: ids covering fewer pixels are left out (as an object hidden behind others).
    """

    name = "oracle"

    def __init__(self, min_pixels: int = 1) -> None:
        self.min_pixels = int(min_pixels)

    def propose(self, rgb: np.ndarray, depth: np.ndarray | None = None, labels: np.ndarray | None = None) -> Proposals:
        """The masks of the non-zero ids of ``labels`` (``(H, W)`` ground truth; required).

        Raises:
            ConfigError: no ``labels`` given (the oracle needs ground truth).
        """
        check_image(rgb)
        if labels is None:
            raise ConfigError("the oracle proposer needs the ground-truth labels of the image (simulated data)")
        ids, counts = np.unique(labels, return_counts=True)
        ids = [int(i) for i, n in zip(ids, counts, strict=True) if i != 0 and n >= self.min_pixels]
        if not ids:
            return Proposals.empty(rgb.shape[:2])
        return Proposals(np.stack([labels == i for i in ids]), np.ones(len(ids), np.float32))


@register_proposer("oracle")
def oracle_proposer(**kwargs: object) -> OracleProposer:
    """Ground-truth masks of simulated scenes (:class:`OracleProposer`)."""
    return OracleProposer(**kwargs)  # type: ignore[arg-type]
