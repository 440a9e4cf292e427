"""Simulated robot scenes (MuJoCo): a table, objects with look-alikes, ego + exo cameras.

Headless machines render with OSMesa: unless ``MUJOCO_GL`` is already set (``egl`` on a GPU host,
``glfw`` with a display), it is set to ``osmesa`` here, before MuJoCo is imported.
"""

import importlib.util
import os

# Triton (imported lazily by torch/torchvision) bundles its own LLVM; loading it after OSMesa's
# llvmpipe crashes the process (segfault seen with triton 3.9 + Mesa 22). Load it first.
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "osmesa"
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

from corr_core.data.sim.generate import EpisodeInfo, generate_dataset, generate_episode, render_episode  # noqa: E402

__all__ = ["EpisodeInfo", "generate_dataset", "generate_episode", "render_episode"]
