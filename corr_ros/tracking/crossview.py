"""``corr_node``'s cross-view mode: the matcher and schedule built from the node's parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corr_core.errors import ConfigError

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
    anchor = str(param("anchor_camera")) or cameras[0]
    if anchor not in cameras:
        raise ConfigError(f"parameter 'anchor_camera' is {anchor!r}, not one of the cameras {cameras}")
    if len(cameras) < 2:
        raise ConfigError(f"parameter 'crossview_checkpoint' needs at least two cameras, got {cameras}")
    if bool(param("crossview_depth")) and not str(param("crossview_rig")):
        raise ConfigError("parameter 'crossview_depth' needs 'crossview_rig' (depth narrows the epipolar band "
                          "of calibrated cameras; without a rig there is none)")
    from corr_core.crossview.matcher import CrossViewMatcher  # imports torch and the model
    from corr_core.crossview.multicam import CrossViewLink
    from corr_core.proposals import build_proposer

    name = str(param("crossview_proposer"))
    proposer = None if name == "none" else build_proposer(name)
    matcher = CrossViewMatcher.from_checkpoint(checkpoint, device, proposer=proposer)
    rig = None
    if str(param("crossview_rig")):
        from corr_core.crossview.rig import CameraRig

        rig = CameraRig.from_yaml(str(param("crossview_rig")))
    depth = f", depth from {anchor}" if rig is not None and bool(param("crossview_depth")) else ""
    logger.info(f"cross-view mode: objects of '{anchor}' matched into {[c for c in cameras if c != anchor]} "
                f"with {checkpoint} (proposals: {name}; rig: {rig.source if rig else 'none'}{depth})")
    return CrossViewLink(matcher, anchor, cameras, int(param("crossview_rematch_every")),
                         int(param("crossview_retry_every")), rig=rig, slop_s=float(param("slop")))
