"""Which decoded frame of a camera may reach its tracker (frame sizes).

The rules live in :mod:`corr_core.runtime.frames` (no ROS: ``corr bag process`` applies the same
ones); this module keeps the names importable from their old place.
"""

from corr_core.runtime.frames import Size, SizeGate, Verdict, format_size

__all__ = ["Size", "SizeGate", "Verdict", "format_size"]
