"""Where a simulated episode's files live, and whether an episode already on disk may be written.

An episode ``name`` under ``out`` owns (see :mod:`corr_core.data.sim.generate` for the contents)::

    <cam>/JPEGImages/<H>p/<name>/  <cam>/Annotations/<H>p/<name>/  <cam>/Depth/<name>/
    <cam>/ImageSets/2016/val.txt   (lists <name>)
    meta/<name>.json               written last: the episode is complete
    meta/.<name>.incomplete.json   while it is being written (its settings); removed at the end
    bags/<name>/

Rules for writing an episode where one of the same name exists (:func:`prepare_episode`), so that
one episode never holds frames of two runs:

* with ``overwrite``, the old episode is removed whole first (every resolution and camera folder,
  its bag, its metadata; the name leaves the split files of cameras the new episode lacks);
* an episode left unfinished by an interrupted run (its ``.incomplete`` marker is there) is
  replaced whole;
* a complete episode written with the same settings (seed, frames, objects, look-alikes, exo
  cameras, size) is written again in place: generation is deterministic, so every file is
  rewritten with the same content (a bag already there is refused: bags are never overwritten);
* otherwise (other settings, or episode files without metadata) it is refused with a
  :class:`~corr_core.errors.DataError` that names the episode, the folder and the differences.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from corr_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLIT_FILE = Path("ImageSets") / "2016" / "val.txt"
_FRAME_KINDS = ("JPEGImages", "Annotations")  # these have a resolution folder (<H>p) level
_SETTING_KEYS = ("seed", "num_frames", "num_objects", "num_lookalikes", "num_exo", "size", "hidden_per_camera")
_HINT = "pass --overwrite (overwrite=True) to replace it whole, or write to another --out or episode name"


def check_name(name: str) -> None:
    """Refuses episode names that are not a single plain folder name.

    Raises:
        ConfigError: for an empty name, ``.``/``..``, or one with a path separator.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(f"episode name must be a plain folder name, got {name!r}")


def episode_settings(
    seed: int, num_frames: int, num_objects: int, num_lookalikes: int, num_exo: int, size: tuple[int, int],
    hidden_per_camera: int = 0,
) -> dict[str, Any]:
    """The settings that decide an episode's content (``num_lookalikes`` already resolved)."""
    return {
        "seed": int(seed),
        "num_frames": int(num_frames),
        "num_objects": int(num_objects),
        "num_lookalikes": int(num_lookalikes),
        "num_exo": int(num_exo),
        "size": [int(size[0]), int(size[1])],
        "hidden_per_camera": int(hidden_per_camera),
    }


def settings_of_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The settings of an episode from its metadata JSON (see :func:`episode_settings`).

    Raises:
        KeyError, TypeError, ValueError: for metadata that does not have the documented fields.
    """
    objects = meta["objects"]
    return episode_settings(
        meta["seed"],
        meta["num_frames"],
        len(objects),
        sum(o.get("lookalike_of") is not None for o in objects),
        len(meta["cameras"]) - 1,
        tuple(meta["size"]),
        int(meta.get("hidden_per_camera", 0)),
    )


def meta_path(out: Path, name: str) -> Path:
    """The metadata JSON of episode ``name`` (written last)."""
    return out / "meta" / f"{name}.json"


def marker_path(out: Path, name: str) -> Path:
    """The marker (holding the settings) of an episode that is being written."""
    return out / "meta" / f".{name}.incomplete.json"


def bag_path(out: Path, name: str) -> Path:
    """The rosbag2 folder of episode ``name``."""
    return out / "bags" / name


def _camera_dirs(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    kinds = (*_FRAME_KINDS, "Depth", "ImageSets")
    return sorted(d for d in out.iterdir() if d.is_dir() and any((d / k).is_dir() for k in kinds))


def frame_dirs(out: Path, name: str) -> list[Path]:
    """Every frame folder of episode ``name`` under ``out``, in any camera and resolution."""
    found = []
    for cam in _camera_dirs(out):
        for kind in _FRAME_KINDS:
            if (cam / kind).is_dir():
                found += [res / name for res in sorted((cam / kind).iterdir()) if (res / name).is_dir()]
        if (cam / "Depth" / name).is_dir():
            found.append(cam / "Depth" / name)
    return found


def _describe(settings: dict[str, Any], key: str) -> str:
    value = settings[key]
    return f"{value[0]}x{value[1]}" if key == "size" else str(value)


def _existing_settings(out: Path, name: str) -> dict[str, Any]:
    path = meta_path(out, name)
    try:
        return settings_of_meta(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(
            f"episode {name!r} in {out}: its metadata {path} is unreadable ({type(exc).__name__}: {exc}); "
            f"{_HINT}"
        ) from exc


def is_complete(out: Path, name: str, settings: dict[str, Any], bag: bool) -> bool:
    """Whether episode ``name`` was written completely with exactly ``settings`` (and its bag,
    when ``bag``): such an episode can be used as it is instead of being rendered again."""
    meta = meta_path(out, name)
    if not meta.is_file() or marker_path(out, name).exists() or (bag and not bag_path(out, name).exists()):
        return False
    try:
        return settings_of_meta(json.loads(meta.read_text())) == settings
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def prepare_episode(
    out: Path, name: str, settings: dict[str, Any], bag: bool, overwrite: bool, dry_run: bool = False
) -> None:
    """Makes room for episode ``name`` under ``out`` following the rules in the module docstring.

    Args:
        out: the output root.
        name: the episode name.
        settings: the new episode's :func:`episode_settings`.
        bag: whether the new episode writes a bag.
        overwrite: replace an existing episode of that name whole.
        dry_run: only check (raise if refused); remove nothing.

    Raises:
        DataError: if the existing episode may not be written over (named, with the differences).
    """
    meta, marker, bag_dir = meta_path(out, name), marker_path(out, name), bag_path(out, name)
    frames = frame_dirs(out, name)
    if not (frames or meta.exists() or marker.exists() or bag_dir.exists()):
        return
    if overwrite or marker.exists():
        if not dry_run:
            if not overwrite:
                log.warning("episode %r in %s was left unfinished by an earlier run; replacing it", name, out)
            cameras = ["ego"] + [f"exo{k + 1}" for k in range(settings["num_exo"])]
            remove_episode(out, name, keep_in_splits=cameras)
        return
    if not meta.exists():
        where = ", ".join(str(p) for p in (frames or [bag_dir])[:3])
        raise DataError(
            f"episode {name!r} in {out} has files ({where}) but no metadata {meta}, so its settings are "
            f"unknown; {_HINT}"
        )
    old = _existing_settings(out, name)
    diffs = [
        f"{k} {_describe(old, k)} -> {_describe(settings, k)}" for k in _SETTING_KEYS if old[k] != settings[k]
    ]
    if diffs:
        raise DataError(
            f"episode {name!r} in {out} was written with other settings ({', '.join(diffs)}); "
            f"writing over it would mix two episodes in one; {_HINT}"
        )
    if bag and bag_dir.exists():
        raise DataError(f"bag folder {bag_dir} exists already; corr does not overwrite bags; {_HINT}")


def remove_episode(out: Path, name: str, keep_in_splits: list[str]) -> None:
    """Removes every file of episode ``name``; the name leaves the split files of the cameras not
    in ``keep_in_splits`` (the others keep their order). Resolution folders left empty go too."""
    check_name(name)
    for folder in frame_dirs(out, name):
        shutil.rmtree(folder)
        parent = folder.parent
        if parent.name != "Depth" and parent.parent.name in _FRAME_KINDS and not any(parent.iterdir()):
            parent.rmdir()
    for cam in _camera_dirs(out):
        if cam.name not in keep_in_splits:
            remove_from_split(cam / SPLIT_FILE, name)
    if bag_path(out, name).exists():
        shutil.rmtree(bag_path(out, name))
    for path in (meta_path(out, name), marker_path(out, name)):
        path.unlink(missing_ok=True)


def append_to_split(path: Path, name: str) -> None:
    """Adds ``name`` at the end of a split file (created) unless it is listed already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = path.read_text().split() if path.exists() else []
    if name not in names:
        path.write_text("\n".join([*names, name]) + "\n")


def remove_from_split(path: Path, name: str) -> None:
    """Removes ``name`` from a split file, if the file lists it."""
    if not path.is_file():
        return
    names = path.read_text().split()
    if name in names:
        kept = [n for n in names if n != name]
        path.write_text("".join(f"{n}\n" for n in kept))
