"""One synchronised set of camera frames -> label maps, overlays and a summary (``corr_node``'s worker).

The processing itself lives in :mod:`corr_core.runtime.processing` (no ROS: ``corr bag process``
runs the same :class:`SetProcessor` over recorded bags); this module keeps the names importable
from their old place.
"""

from corr_core.runtime.processing import (
    LOG_IDS,
    CameraOutput,
    Frame,
    ProcessedSet,
    SetProcessor,
    format_ids,
    objects,
)

__all__ = ["LOG_IDS", "CameraOutput", "Frame", "ProcessedSet", "SetProcessor", "format_ids", "objects"]
