"""Simulated episodes in memory or on disk: DAVIS layout per camera, depth, metadata, MCAP bag.

Layout under ``out_dir`` for an episode ``name`` rendered at ``W x H``::

    <cam>/JPEGImages/<H>p/<name>/%05d.jpg     RGB (JPEG quality 95)
    <cam>/Annotations/<H>p/<name>/%05d.png    instance ids (palette PNG), the same ids in every camera
    <cam>/Depth/<name>/%05d.png               depth along the optical axis, uint16 millimetres (0 = none)
    <cam>/ImageSets/2016/val.txt              episode names (appended)
    meta/<name>.json                          seed, objects and look-alikes, events, cameras, poses, stamps
    bags/<name>/                              rosbag2 (MCAP): /<cam>/image_raw (rgb8), /<cam>/camera_info,
                                              /<cam>/pose (PoseStamped of the optical frame in "world"),
                                              /<cam>/depth_registered/image_rect (16UC1 millimetres)

Frame ``i`` of every camera is stamped ``STAMP_OFFSET_NS + i * FRAME_PERIOD_NS`` (10 Hz) in the
bag and the metadata; ``frame_id`` is ``<cam>_optical_frame``. The poses and depth are what
``corr_node``'s camera rig reads (every sim camera is ``moving: true`` in frame ``world``).

An episode of the same name already under ``out_dir`` is never mixed with the new one: it is
replaced whole with ``overwrite``, written again in place when its settings are the same, and
otherwise refused (rules in :mod:`corr_core.data.sim.layout`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from corr_core.data.image_codec import depth_to_mm
from corr_core.data.labels import write_label_png
from corr_core.data.sim.layout import (
    SPLIT_FILE,
    append_to_split,
    bag_path,
    check_name,
    episode_settings,
    is_complete,
    marker_path,
    meta_path,
    prepare_episode,
)
from corr_core.data.sim.render import SceneRenderer
from corr_core.data.sim.sampling import default_num_lookalikes, sample_scene
from corr_core.data.sim.scene import FPS, SceneSpec
from corr_core.errors import ConfigError
from corr_core.topics import DEPTH, POSE, camera_topic

STAMP_OFFSET_NS = 1_700_000_000 * 10**9  # stamp of frame 0
FRAME_PERIOD_NS = int(round(1e9 / FPS))  # 100 ms
MAX_OBJECTS = 255  # palette PNGs hold ids 0..255
WORLD_FRAME = "world"  # frame_id of the cameras' poses in the bag
CONVENTIONS = {
    "ids": "0 = background (table, floor, walls, robot); object i (0-based) has id i + 1 in every camera and frame",
    "K": "pinhole, f = (H/2)/tan(fovy/2), cx = (W-1)/2, cy = (H-1)/2 (OpenCV pixel centres)",
    "T_world_cam": "4x4 camera-to-world of the optical frame (x right, y down, z forward), world z up, metres",
    "depth": "distance along the optical axis; PNG: uint16 millimetres, 0 = no surface",
    "quat": "w, x, y, z",
}


@dataclass
class EpisodeInfo:
    """What :func:`generate_episode` wrote.

    Attributes:
        name: episode name (folder name in the DAVIS layout).
        seed: the seed it was drawn from.
        cameras: camera names (``ego``, ``exo1``, ...).
        num_frames: frames per camera.
        size: ``(W, H)``.
        root: the output folder.
        meta_path: the metadata JSON.
        bag_path: the rosbag2 folder, or None without a bag.
        render_s: seconds spent rendering (excluding file writing).
        frames_per_s: rendered camera frames per second (``num_frames * len(cameras) / render_s``).
    """

    name: str
    seed: int
    cameras: list[str]
    num_frames: int
    size: tuple[int, int]
    root: Path
    meta_path: Path
    bag_path: Path | None
    render_s: float = 0.0
    frames_per_s: float = 0.0


def _check(
    num_frames: int, num_objects: int, num_exo: int, size: tuple[int, int], num_lookalikes: int | None,
    hidden_per_camera: int = 0,
) -> None:
    if num_frames < 1:
        raise ConfigError(f"frames must be >= 1, got {num_frames}")
    if not 1 <= num_objects <= MAX_OBJECTS:
        raise ConfigError(f"objects must be in 1..{MAX_OBJECTS}, got {num_objects}")
    if not 1 <= num_exo <= 16:
        raise ConfigError(f"exo cameras must be in 1..16, got {num_exo}")
    if len(size) != 2 or not (32 <= size[0] <= 4096 and 32 <= size[1] <= 4096):
        raise ConfigError(f"image size must be between 32x32 and 4096x4096, got {size}")
    if num_lookalikes is not None and not 0 <= num_lookalikes <= num_objects // 2:
        raise ConfigError(
            f"look-alikes must be in 0..{num_objects // 2} for {num_objects} objects, got {num_lookalikes}"
        )
    if not 0 <= hidden_per_camera <= num_objects // (num_exo + 1):
        raise ConfigError(
            f"hidden objects per camera must be in 0..{num_objects // (num_exo + 1)} for {num_objects} objects "
            f"and {num_exo + 1} cameras (each camera hides other objects), got {hidden_per_camera}"
        )


_SETTING_ARGS = ("num_frames", "num_objects", "num_exo", "size", "num_lookalikes", "hidden_per_camera")


def hidden_objects(spec: SceneSpec, per_camera: int) -> dict[str, list[int]]:
    """``per_camera`` objects hidden from each camera, different objects for different cameras,
    drawn from the episode's seed: camera -> ids."""
    if per_camera <= 0:
        return {}
    rng = np.random.default_rng([int(spec.seed), 0x41D])
    ids = [int(i) for i in rng.permutation([o.id for o in spec.objects])]
    return {cam: sorted(ids[k * per_camera : (k + 1) * per_camera]) for k, cam in enumerate(spec.cameras)}


def _settings(
    seed: int,
    num_frames: int = 40,
    num_objects: int = 5,
    num_exo: int = 1,
    size: tuple[int, int] = (320, 240),
    num_lookalikes: int | None = None,
    hidden_per_camera: int = 0,
) -> dict[str, Any]:
    """The settings an episode is checked against (defaults as :func:`generate_episode`'s).

    Raises:
        ConfigError: for counts or sizes out of range.
    """
    _check(num_frames, num_objects, num_exo, size, num_lookalikes, hidden_per_camera)
    n_look = default_num_lookalikes(num_objects) if num_lookalikes is None else int(num_lookalikes)
    return episode_settings(seed, num_frames, num_objects, n_look, num_exo, size, hidden_per_camera)


def stamp_ns(index: int) -> int:
    """Stamp of frame ``index`` (ns), identical for every camera."""
    return STAMP_OFFSET_NS + index * FRAME_PERIOD_NS


def render_episode(
    seed: int = 0,
    num_frames: int = 40,
    num_objects: int = 5,
    num_exo: int = 1,
    size: tuple[int, int] = (320, 240),
    num_lookalikes: int | None = None,
    hidden_per_camera: int = 0,
) -> Iterator[dict[str, Any]]:
    """Renders an episode in memory, frame by frame (nothing is written).

    Args:
        seed: episode seed; the same seed gives byte-identical frames.
        num_frames: frames per camera.
        num_objects: objects on the table, look-alikes included.
        num_exo: static exocentric cameras (``exo1`` ...), besides the moving ``ego`` camera.
        size: ``(W, H)``.
        num_lookalikes: objects that copy another's shape, size and texture (default: one per four
            objects, at least one from three objects up).
        hidden_per_camera: objects each camera does not see (:func:`hidden_objects`; other
            cameras see them), for cross-view existence.

    Returns:
        An iterator over frames, each ``{"index": i, "stamp_ns": int, "cameras": {cam: {"rgb": (H, W, 3) uint8,
        "labels": (H, W) uint8 ids, "depth": (H, W) float32 metres, "K": (3, 3) float64,
        "T_world_cam": (4, 4) float64}}}``. The renderer opens on the first frame and is closed
        when the iterator is exhausted or closed.

    Raises:
        ConfigError: for counts or sizes out of range.
    """
    _check(num_frames, num_objects, num_exo, size, num_lookalikes, hidden_per_camera)  # here, not on next()
    spec = sample_scene(seed, num_objects, num_exo, num_frames, num_lookalikes)
    return _render_frames(spec, size, hidden_objects(spec, hidden_per_camera))


def _render_frames(spec: SceneSpec, size: tuple[int, int], hidden: dict[str, list[int]]) -> Iterator[dict[str, Any]]:
    with SceneRenderer(spec, size, hidden) as renderer:
        for i in range(spec.num_frames):
            frame = renderer.render_frame(i)
            frame["stamp_ns"] = stamp_ns(i)
            yield frame


def _meta(spec: SceneSpec, renderer: SceneRenderer, name: str, size: tuple[int, int]) -> dict[str, Any]:
    twins: dict[int, list[int]] = {}
    for o in spec.objects:
        if o.lookalike_of is not None:
            twins.setdefault(o.lookalike_of, []).append(o.id)
            twins.setdefault(o.id, []).append(o.lookalike_of)
    objects = [
        {
            "id": o.id,
            "shape": o.shape,
            "size": o.size,
            "lying": o.lying,
            "material": o.material,
            "texture": o.texture,
            "lookalike_of": o.lookalike_of,
            "lookalikes": sorted(twins.get(o.id, [])),
        }
        for o in spec.objects
    ]
    cams = {}
    for cam in renderer.cameras:
        fovy = renderer.fovy(cam)
        cams[cam] = {
            "frame_id": f"{cam}_optical_frame",
            "static": cam != "ego",
            "width": size[0],
            "height": size[1],
            "fovy_deg": fovy,
            "K": renderer.intrinsics(cam).tolist(),
            "T_world_cam": [],
        }
    tr = renderer.traj
    return {
        "name": name,
        "seed": spec.seed,
        "num_frames": spec.num_frames,
        "size": list(size),
        "fps": FPS,
        "stamp_offset_ns": STAMP_OFFSET_NS,
        "frame_period_ns": FRAME_PERIOD_NS,
        "stamps_ns": [stamp_ns(i) for i in range(spec.num_frames)],
        "conventions": CONVENTIONS,
        "objects": objects,
        "events": [
            {
                "kind": e.kind,
                "object_id": e.object_id,
                "start_frame": e.start,
                "end_frame": e.end,
                "from_xy": e.from_xy,
                "to_xy": e.to_xy,
            }
            for e in spec.events
        ],
        "cameras": cams,
        "object_poses": {"pos": np.round(tr.obj_pos, 6).tolist(), "quat": np.round(tr.obj_quat, 6).tolist()},
        "manipulated_id": tr.active.tolist(),
        "scene": spec.to_json(),
    }


def _write_frame(out: Path, cam: str, res: str, name: str, i: int, c: dict[str, np.ndarray]) -> None:
    base = out / cam
    Image.fromarray(c["rgb"]).save(base / "JPEGImages" / res / name / f"{i:05d}.jpg", quality=95)
    write_label_png(base / "Annotations" / res / name / f"{i:05d}.png", c["labels"])
    Image.fromarray(depth_to_mm(c["depth"])).save(base / "Depth" / name / f"{i:05d}.png")


def generate_episode(
    out_dir: str | Path,
    seed: int = 0,
    num_frames: int = 40,
    num_objects: int = 5,
    num_exo: int = 1,
    size: tuple[int, int] = (320, 240),
    name: str = "episode_000",
    bag: bool = True,
    num_lookalikes: int | None = None,
    overwrite: bool = False,
    reuse: bool = False,
    hidden_per_camera: int = 0,
) -> EpisodeInfo:
    """Renders one episode and writes it (layout in the module docstring). Deterministic in ``seed``.

    Args:
        out_dir: output root (created; other episodes in it are kept, ``val.txt`` is appended).
        seed, num_frames, num_objects, num_exo, size, num_lookalikes, hidden_per_camera: see
            :func:`render_episode`.
        name: episode name (a plain folder name).
        bag: also write the rosbag2 (MCAP) folder ``bags/<name>``.
        overwrite: replace an episode of the same name whole (frames of every camera and
            resolution, depth, metadata, bag); without it an episode written with other settings
            is refused, and one with the same settings is written again in place.
        reuse: an episode of that name written completely with the same settings is used as it is
            (nothing is rendered; training caches re-use their episodes this way).

    Raises:
        ConfigError: for counts, sizes or names out of range. DataError: if an episode of that name
            exists with other settings or without metadata, or its bag exists already (checked
            before rendering; see :mod:`corr_core.data.sim.layout`).
    """
    check_name(name)
    out = Path(out_dir)
    settings = _settings(seed, num_frames, num_objects, num_exo, size, num_lookalikes, hidden_per_camera)
    if reuse and not overwrite and is_complete(out, name, settings, bag):
        cameras = ["ego"] + [f"exo{k + 1}" for k in range(num_exo)]
        return EpisodeInfo(name, seed, cameras, num_frames, (int(size[0]), int(size[1])), out,
                           meta_path(out, name), bag_path(out, name) if bag else None)
    prepare_episode(out, name, settings, bag, overwrite)
    bag_dir = bag_path(out, name) if bag else None
    spec = sample_scene(seed, num_objects, num_exo, num_frames, num_lookalikes)
    hidden = hidden_objects(spec, hidden_per_camera)
    res = f"{size[1]}p"
    writer = None
    render_s = 0.0
    marker = marker_path(out, name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(settings))
    try:
        with SceneRenderer(spec, size, hidden) as renderer:
            meta = _meta(spec, renderer, name, tuple(size))
            meta["hidden_per_camera"], meta["hidden"] = int(hidden_per_camera), hidden
            for cam in renderer.cameras:
                for sub in (f"JPEGImages/{res}/{name}", f"Annotations/{res}/{name}", f"Depth/{name}"):
                    (out / cam / sub).mkdir(parents=True, exist_ok=True)
            if bag_dir is not None:
                from corr_core.data.bag import BagWriter

                bag_dir.parent.mkdir(parents=True, exist_ok=True)
                writer = BagWriter(bag_dir, storage="mcap")
            for i in range(num_frames):
                t0 = time.perf_counter()
                frame = renderer.render_frame(i)
                render_s += time.perf_counter() - t0
                stamp = stamp_ns(i)
                for cam, c in frame["cameras"].items():
                    _write_frame(out, cam, res, name, i, c)
                    meta["cameras"][cam]["T_world_cam"].append(np.round(c["T_world_cam"], 9).tolist())
                    if writer is not None:  # calibration, pose and depth first: a reader has them with the image
                        fid = f"{cam}_optical_frame"
                        writer.add_camera_info(f"/{cam}/camera_info", stamp, fid, size[0], size[1], c["K"])
                        writer.add_pose(camera_topic(cam, POSE, True), stamp, WORLD_FRAME, c["T_world_cam"])
                        writer.add_image(camera_topic(cam, DEPTH, True), stamp, fid,
                                         depth_to_mm(c["depth"]), "16UC1")
                        writer.add_image(f"/{cam}/image_raw", stamp, fid, c["rgb"])
    finally:
        if writer is not None:
            writer.close()
    for cam in spec.cameras:
        append_to_split(out / cam / SPLIT_FILE, name)
    meta_file = meta_path(out, name)
    meta_file.write_text(json.dumps(meta, indent=1))
    marker.unlink()
    n_cam_frames = num_frames * len(spec.cameras)
    return EpisodeInfo(
        name,
        seed,
        list(spec.cameras),
        num_frames,
        (int(size[0]), int(size[1])),
        out,
        meta_file,
        bag_dir,
        render_s,
        n_cam_frames / max(render_s, 1e-9),
    )


def generate_dataset(
    out_dir: str | Path, seed: int = 0, num_episodes: int = 1, **kwargs: Any
) -> list[EpisodeInfo]:
    """Writes ``num_episodes`` episodes named ``episode_%03d`` into one DAVIS-layout root.

    Episode ``i`` uses seed ``seed + i`` (so any episode can be re-rendered alone with
    :func:`generate_episode`); other keyword arguments go to :func:`generate_episode`. Every
    episode already in ``out_dir`` is checked before the first one is rendered.

    Raises:
        ConfigError: for ``num_episodes < 1`` or bad episode settings. DataError: if an existing
            episode may not be written over (see :func:`generate_episode`).
    """
    if num_episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {num_episodes}")
    setting_kwargs = {k: kwargs[k] for k in _SETTING_ARGS if k in kwargs}
    for i in range(num_episodes):
        settings = _settings(seed + i, **setting_kwargs)
        prepare_episode(
            Path(out_dir),
            f"episode_{i:03d}",
            settings,
            kwargs.get("bag", True),
            kwargs.get("overwrite", False),
            dry_run=True,
        )
    return [
        generate_episode(out_dir, seed=seed + i, name=f"episode_{i:03d}", **kwargs)
        for i in range(num_episodes)
    ]
