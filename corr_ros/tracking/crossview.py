"""``corr_node``'s cross-view mode: the matcher and schedule built from the node's parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["build_link"]


def build_link(param: Callable[[str], Any], cameras: list[str], device: str, logger: Any) -> Any:
    """A :class:`~corr_core.crossview.multicam.CrossViewLink` for the configured cameras, or None
    when ``crossview_checkpoint`` is empty.

    Args:
        param: the node's parameter values by name.
        cameras: the configured cameras.
        device: torch device of the model.
        logger: has ``info``.

    Raises:
        ConfigError: an anchor camera that is not configured, a single camera, a missing or invalid
            rig file or one without a camera, depth without a rig. CheckpointError: a missing or foreign checkpoint (a
            colouriser, an FC network, ...).
    """
    checkpoint = str(param("crossview_checkpoint"))
    if not checkpoint:
        return None
    from corr_core.crossview.multicam import build_link as build_core_link

    return build_core_link(
        checkpoint, cameras, str(param("anchor_camera")) or None, device, str(param("crossview_proposer")),
        str(param("crossview_rig")) or None, bool(param("crossview_depth")), int(param("crossview_rematch_every")),
        int(param("crossview_retry_every")), float(param("slop")),
        names={"checkpoint": "parameter 'crossview_checkpoint'", "anchor": "parameter 'anchor_camera'",
               "rig": "'crossview_rig'", "depth": "parameter 'crossview_depth'"},
        log=logger.info, geometry_wait_s=float(param("crossview_geometry_wait")))
