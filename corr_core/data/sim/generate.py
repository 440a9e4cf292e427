"""Writes simulated episodes: DAVIS layout per camera, depth, camera metadata, and an MCAP bag.

Layout under ``out_dir`` for an episode ``name`` rendered at height ``H``::

    <cam>/JPEGImages/<H>p/<name>/%05d.jpg     RGB
    <cam>/Annotations/<H>p/<name>/%05d.png    instance ids (palette PNG), same ids in every camera
    <cam>/Depth/<name>/%05d.png               depth, uint16 millimetres
    <cam>/ImageSets/2016/val.txt              episode names
    meta/<name>.json                          seed, objects, K and per-frame camera-to-world poses
    bags/<name>/                              rosbag2 (MCAP): /<cam>/image_raw, /<cam>/camera_info
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from corr_core.data.labels import write_label_png
from corr_core.data.sim.scene import SceneRenderer, sample_scene
from corr_core.errors import ConfigError

STAMP_OFFSET_NS = 1_700_000_000 * 10**9  # bag stamps: offset + frame index * period
FRAME_PERIOD_NS = 100_000_000  # 10 Hz


@dataclass
class EpisodeInfo:
    """What :func:`generate_episode` wrote."""

    name: str
    seed: int
    cameras: list[str]
    num_frames: int
    size: tuple[int, int]
    root: Path
    meta_path: Path
    bag_path: Path | None


def _check(num_frames: int, num_objects: int, num_exo: int, size: tuple[int, int]) -> None:
    if num_frames < 1 or num_objects < 1 or num_exo < 1:
        raise ConfigError(f"need frames, objects and exo cameras >= 1, got {num_frames}, {num_objects}, {num_exo}")
    if size[0] < 32 or size[1] < 32:
        raise ConfigError(f"image size must be at least 32x32, got {size[0]}x{size[1]}")


def render_episode(seed: int = 0, num_frames: int = 40, num_objects: int = 5, num_exo: int = 1,
                   size: tuple[int, int] = (320, 240)) -> Iterator[dict[str, Any]]:
    """Renders an episode in memory; yields per-frame dicts (see :meth:`SceneRenderer.frames`)."""
    _check(num_frames, num_objects, num_exo, size)
    spec = sample_scene(seed, num_objects, num_exo)
    with SceneRenderer(spec, size, num_frames) as renderer:
        yield from renderer.frames()


def generate_episode(out_dir: str | Path, seed: int = 0, num_frames: int = 40, num_objects: int = 5,
                     num_exo: int = 1, size: tuple[int, int] = (320, 240), name: str = "episode_000",
                     bag: bool = True) -> EpisodeInfo:
    """Renders one episode and writes it (layout in the module docstring). Deterministic in ``seed``."""
    _check(num_frames, num_objects, num_exo, size)
    out = Path(out_dir)
    spec = sample_scene(seed, num_objects, num_exo)
    res = f"{size[1]}p"
    writer = None
    if bag:
        from corr_core.data.bag import BagWriter

        bag_path = out / "bags" / name
        bag_path.parent.mkdir(parents=True, exist_ok=True)
        writer = BagWriter(bag_path, storage="mcap")
    meta: dict[str, Any] = {"name": name, "seed": seed, "size": list(size), "num_frames": num_frames,
                            "scene": spec.to_json(), "cameras": {}, "stamps_ns": []}
    try:
        with SceneRenderer(spec, size, num_frames) as renderer:
            for cam in renderer.cameras:
                for sub in (f"JPEGImages/{res}/{name}", f"Annotations/{res}/{name}", f"Depth/{name}"):
                    (out / cam / sub).mkdir(parents=True, exist_ok=True)
                meta["cameras"][cam] = {"K": renderer.intrinsics(cam).tolist(), "T_world_cam": [],
                                        "frame_id": f"{cam}_optical_frame"}
            for frame in renderer.frames():
                i = frame["index"]
                stamp = STAMP_OFFSET_NS + i * FRAME_PERIOD_NS
                meta["stamps_ns"].append(stamp)
                for cam, c in frame["cameras"].items():
                    base = out / cam
                    cv2.imwrite(str(base / f"JPEGImages/{res}/{name}/{i:05d}.jpg"),
                                cv2.cvtColor(c["rgb"], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                    write_label_png(base / f"Annotations/{res}/{name}/{i:05d}.png", c["labels"])
                    depth_mm = np.clip(c["depth"] * 1000.0, 0, 65535).astype(np.uint16)
                    cv2.imwrite(str(base / f"Depth/{name}/{i:05d}.png"), depth_mm)
                    meta["cameras"][cam]["T_world_cam"].append(c["T_world_cam"].tolist())
                    if writer is not None:
                        fid = f"{cam}_optical_frame"
                        writer.add_image(f"/{cam}/image_raw", stamp, fid, c["rgb"])
                        writer.add_camera_info(f"/{cam}/camera_info", stamp, fid, size[0], size[1], c["K"])
            cameras = list(renderer.cameras)
    finally:
        if writer is not None:
            writer.close()
    for cam in cameras:
        split = out / cam / "ImageSets" / "2016" / "val.txt"
        split.parent.mkdir(parents=True, exist_ok=True)
        names = split.read_text().split() if split.exists() else []
        if name not in names:
            split.write_text("\n".join([*names, name]) + "\n")
    meta_path = out / "meta" / f"{name}.json"
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=1))
    return EpisodeInfo(name, seed, cameras, num_frames, tuple(size), out, meta_path,
                       out / "bags" / name if bag else None)


def generate_dataset(out_dir: str | Path, seed: int = 0, num_episodes: int = 1, **kwargs: Any) -> list[EpisodeInfo]:
    """Writes ``num_episodes`` episodes named ``episode_%03d``; episode ``i`` uses seed ``seed + i``."""
    return [generate_episode(out_dir, seed=seed + i, name=f"episode_{i:03d}", **kwargs) for i in range(num_episodes)]
