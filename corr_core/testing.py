"""Helpers shared by the test-suite and benchmarks (no test framework imports here)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """The project's shared data folder, or None when it is absent.

    Set by ``CORR_SHARED_DATA``; defaults to ``<repo>/../shared/data`` (where CI checks it out).
    """
    path = Path(os.environ.get("CORR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    return path if path.is_dir() else None


def davis_dev_root() -> Path | None:
    """``davis2016-train`` inside the shared data folder, or None when it is absent."""
    root = shared_data_dir()
    if root is None or not (root / "davis2016-train").is_dir():
        return None
    return root / "davis2016-train"
