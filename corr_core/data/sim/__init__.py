"""Simulated robot scenes (MuJoCo): a tabletop with look-alike objects, a robot that pushes and
picks objects, a moving egocentric camera and static exocentric cameras.

* :func:`render_episode` yields frames in memory (RGB, instance ids, depth, K, camera pose);
* :func:`generate_episode` / :func:`generate_dataset` write DAVIS-layout folders per camera, depth
  PNGs, metadata JSON and a rosbag2 (MCAP) per episode (``corr generate sim``).

Headless machines render with OSMesa: unless ``MUJOCO_GL`` is already set (``egl`` on a GPU host,
``glfw`` with a display), it is set to ``osmesa`` here, before MuJoCo is imported. Importing MuJoCo
earlier elsewhere in the process fixes the backend before this package can choose it.
"""

import importlib.util
import logging
import os

# Triton (imported lazily by torch/torchvision) bundles its own LLVM; loading it after OSMesa's
# llvmpipe crashes the process (segfault seen with triton 3.9 + Mesa 22). Load it first.
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "osmesa"
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

# PyOpenGL logs an INFO line about its optional accelerator module on import; not news to users.
logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.WARNING)

from corr_core.data.sim.generate import (  # noqa: E402
    EpisodeInfo,
    generate_dataset,
    generate_episode,
    render_episode,
    stamp_ns,
)
from corr_core.data.sim.sampling import sample_scene  # noqa: E402
from corr_core.data.sim.scene import SceneSpec  # noqa: E402

__all__ = [
    "EpisodeInfo",
    "SceneSpec",
    "generate_dataset",
    "generate_episode",
    "render_episode",
    "sample_scene",
    "stamp_ns",
]
