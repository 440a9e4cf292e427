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


def small_sim(root: Path, seed: int = 1000, episodes: int = 2, frames: int = 6, objects: int = 4) -> Path:
    """Renders a few small (160x128, ``128p``) ego/exo sim episodes without bags into ``root``, for
    tests that need real renders, ground truth, depth and calibration; returns ``root``."""
    from corr_core.data.sim import generate_dataset

    generate_dataset(root, seed=seed, num_episodes=episodes, num_frames=frames, num_objects=objects,
                     size=(160, 128), bag=False)
    return root
