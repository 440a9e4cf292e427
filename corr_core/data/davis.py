"""Data sets in the DAVIS layout (DAVIS 2016/2017, and bags exported by ``corr bag export``).

::

    root/JPEGImages/<resolution>/<sequence>/00000.jpg ...
    root/Annotations/<resolution>/<sequence>/00000.png ...   (palette PNGs, pixel value = object id)
    root/ImageSets/<year>/<split>.txt                           (one sequence name per line)

The one place that knows this layout: :class:`DavisDataset` (frames and annotations for
tracking), :func:`resolve_split` / :func:`read_split` (split arguments), :func:`annotation_files`
and :func:`sequence_names` (what the metrics score), and the void id :data:`VOID_ID`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from corr_core.data.labels import read_label_png
from corr_core.errors import DataError, ShapeMismatchError

__all__ = [
    "VOID_ID",
    "DavisDataset",
    "annotation_files",
    "read_split",
    "resolve_split",
    "sequence_names",
    "void_to_background",
]

#: Label value that DAVIS uses for "void" pixels; never an object id. The one definition used by
#: the reader, the metrics and the evaluation protocols.
VOID_ID = 255


def void_to_background(labels: np.ndarray) -> np.ndarray:
    """``labels`` with the void id mapped to background (0), same dtype (the official reader does).

    Args:
        labels: ``(H, W)`` integer label map.

    Returns:
        The same array when it holds no void pixel, else a copy with them set to 0.
    """
    labels = np.asarray(labels)
    if (labels == VOID_ID).any():
        labels = np.where(labels == VOID_ID, 0, labels).astype(labels.dtype, copy=False)
    return labels


def resolve_split(root: str | Path, split: str | Path, year: str = "2016") -> Path:
    """Path of a DAVIS split file: the one reader of ``split`` arguments.

    Tried in order: ``split`` as an existing file; a relative ``split`` under ``root``;
    ``root/ImageSets/<year>/<name>.txt`` (``name`` is the last component of ``split``, ``.txt``
    added when missing); the same name under the other years present in ``ImageSets``.

    Args:
        root: DAVIS-layout root.
        split: a split name (``train``, ``val``, ``dev480p``) or a split file.
        year: the ``ImageSets`` sub-folder tried first.

    Raises:
        DataError: if none of these files exists (the message names the file looked for).
    """
    path = Path(split)
    if path.is_file():
        return path
    root = Path(root)
    if not path.is_absolute() and (root / path).is_file():
        return root / path
    image_sets = root / "ImageSets"
    name = path.name if path.suffix == ".txt" else f"{path.name}.txt"
    years = [str(year)]
    if image_sets.is_dir():
        years += sorted(p.name for p in image_sets.iterdir() if p.is_dir() and p.name != str(year))
    for y in years:
        candidate = image_sets / y / name
        if candidate.is_file():
            return candidate
    raise DataError(
        f"DAVIS split {str(split)!r} not found: it is not a file and {image_sets / str(year) / name} "
        f"does not exist (nor {name} under another year of {image_sets})"
    )


def read_split(path: str | Path) -> list[str]:
    """Sequence names listed in a split file: one per line; blank lines and ``#`` comments skipped.

    Raises:
        DataError: if the file is missing or unreadable, or lists no sequence.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"DAVIS split file not found: {path}")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read DAVIS split file {path}: {exc}") from exc
    names = [n for n in (line.strip() for line in lines) if n and not n.startswith("#")]
    if not names:
        raise DataError(f"DAVIS split file {path} lists no sequences")
    return names


def sequence_names(
    root: str | Path,
    split: str | Path | None = None,
    sequences: Iterable[str] | str | None = None,
    resolution: str = "480p",
    year: str = "2016",
) -> list[str]:
    """The sequences to score: ``sequences``, else those of ``split``, else every annotated one.

    Raises:
        DataError: for a missing split file or annotation folder, or when no sequence is left.
    """
    root = Path(root)
    if sequences is not None:
        names = [sequences] if isinstance(sequences, str) else list(sequences)
    elif split is not None:
        names = read_split(resolve_split(root, split, year))
    else:
        ann = root / "Annotations" / resolution
        if not ann.is_dir():
            raise DataError(f"annotation folder not found: {ann}")
        names = sorted(p.name for p in ann.iterdir() if p.is_dir())
    if not names:
        raise DataError(f"no sequences to evaluate under {root}")
    return names


def annotation_files(root: str | Path, sequence: str, resolution: str = "480p") -> list[Path]:
    """Sorted annotation PNGs of a sequence; DataError if there are none or frames lack one.

    Like the official reader, every JPEG frame must have an annotation (when the JPEG folder
    exists), since the semi-supervised protocol scores every frame but the first and last.
    Needs no ``JPEGImages`` folder (scoring predictions needs only the annotations).
    """
    root = Path(root)
    folder = root / "Annotations" / resolution / sequence
    files = sorted(folder.glob("*.png"))
    if not files:
        raise DataError(f"no annotation PNGs for sequence {sequence!r} in {folder}")
    jpegs = root / "JPEGImages" / resolution / sequence
    if jpegs.is_dir():
        n_img = len(list(jpegs.glob("*.jpg")))
        if n_img and n_img != len(files):
            raise DataError(
                f"sequence {sequence!r}: {n_img} frames in {jpegs} but {len(files)} annotations in {folder}; "
                "the semi-supervised evaluation needs an annotation for every frame"
            )
    return files


class DavisDataset:
    """Sequences, frames and annotations of a DAVIS-layout folder.

    Args:
        root: the data set folder (holding ``JPEGImages``, ``Annotations``, ``ImageSets``).
        resolution: the sub-folder of ``JPEGImages``/``Annotations``, e.g. ``"480p"``, ``"240p"``.
        split: a split name (read from ``ImageSets/<year>/<split>.txt``), a path to a split file
            (see :func:`resolve_split`), or None for every sequence folder under
            ``JPEGImages/<resolution>``.
        year: the ``ImageSets`` sub-folder tried first for named splits.

    Raises:
        DataError: if the root, the resolution folder or the split file is missing, or a listed
            sequence has no frame folder (every message names the path at fault).
    """

    def __init__(
        self,
        root: str | Path,
        resolution: str = "480p",
        split: str | Path | None = None,
        year: str = "2016",
    ) -> None:
        self.root = Path(root)
        self.resolution = str(resolution)
        if not self.root.is_dir():
            raise DataError(f"DAVIS root folder not found: {self.root}")
        self.image_dir = self.root / "JPEGImages" / self.resolution
        self.annotation_dir = self.root / "Annotations" / self.resolution
        if not self.image_dir.is_dir():
            have = sorted(p.name for p in (self.root / "JPEGImages").glob("*") if p.is_dir())
            raise DataError(
                f"DAVIS frame folder not found: {self.image_dir} (resolutions present: {have or 'none'})"
            )
        self.split_file = self._split_path(split, str(year))
        if self.split_file is None:
            names = sorted(p.name for p in self.image_dir.iterdir() if p.is_dir())
            if not names:
                raise DataError(f"no sequence folders under {self.image_dir}")
        else:
            names = read_split(self.split_file)
        for name in names:
            if not (self.image_dir / name).is_dir():
                where = f" (listed in {self.split_file})" if self.split_file else ""
                raise DataError(f"DAVIS sequence {name!r}{where} has no frame folder {self.image_dir / name}")
        self.sequences: list[str] = names
        self._frames: dict[str, list[Path]] = {}
        self._annotations: dict[str, list[Path]] = {}

    def _split_path(self, split: str | Path | None, year: str) -> Path | None:
        return None if split is None else resolve_split(self.root, split, year)

    def __len__(self) -> int:
        return len(self.sequences)

    def __repr__(self) -> str:
        return f"DavisDataset({str(self.root)!r}, {self.resolution!r}, {len(self)} sequences)"

    def _check_seq(self, seq: str) -> None:
        if seq not in self.sequences:
            raise DataError(f"sequence {seq!r} is not in {self!r}; sequences: {self.sequences}")

    def frames(self, seq: str) -> list[Path]:
        """The sorted frame files (``.jpg``, or ``.png`` where there are no jpgs) of a sequence.

        Raises:
            DataError: for an unknown sequence or an empty frame folder.
        """
        self._check_seq(seq)
        if seq not in self._frames:
            folder = self.image_dir / seq
            files = sorted(folder.glob("*.jpg")) or sorted(folder.glob("*.png"))
            if not files:
                raise DataError(f"no .jpg/.png frames in {folder}")
            self._frames[seq] = files
        return self._frames[seq]

    def num_frames(self, seq: str) -> int:
        """Number of frames in a sequence."""
        return len(self.frames(seq))

    def annotations(self, seq: str, require_all: bool = True) -> list[Path]:
        """The sorted annotation PNGs of a sequence.

        Args:
            seq: sequence name.
            require_all: demand one annotation per frame (evaluation); with False, only the first
                frame's annotation must exist (the semi-supervised test-set layout).

        Raises:
            DataError: if the annotation folder is missing, or the counts do not match.
        """
        self._check_seq(seq)
        folder = self.annotation_dir / seq
        if seq not in self._annotations:
            if not folder.is_dir():
                raise DataError(f"DAVIS annotation folder not found: {folder}")
            self._annotations[seq] = sorted(folder.glob("*.png"))
        files = self._annotations[seq]
        frames = self.frames(seq)
        if require_all and len(files) != len(frames):
            raise DataError(
                f"{folder} holds {len(files)} annotation PNGs but {self.image_dir / seq} holds "
                f"{len(frames)} frames; they must match one to one"
            )
        if not files or files[0].stem != frames[0].stem:
            raise DataError(f"{folder}: no annotation for the first frame {frames[0].name}")
        return files

    def read_frame(self, seq: str, i: int) -> np.ndarray:
        """Frame ``i`` of a sequence as ``(H, W, 3)`` uint8 RGB.

        Raises:
            IndexError: if ``i`` is out of range. DataError: if the file cannot be decoded.
        """
        path = self._at(self.frames(seq), seq, i, "frame")
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        except OSError as exc:
            raise DataError(f"unreadable frame {path} ({exc})") from exc

    def read_annotation(self, seq: str, i: int) -> np.ndarray:
        """The annotation of frame ``i`` (same file stem, ``.png``) as an ``(H, W)`` uint8 label map.

        Raises:
            IndexError: if ``i`` is out of range. DataError: if the PNG is missing, unreadable or
                not a palette image. ShapeMismatchError: if its size differs from the frame's.
        """
        frame_path = self._at(self.frames(seq), seq, i, "frame")
        path = self.annotation_dir / seq / f"{frame_path.stem}.png"
        if not path.is_file():
            raise DataError(f"annotation for frame {frame_path.name} not found: {path}")
        labels = read_label_png(path)
        with Image.open(frame_path) as im:
            width, height = im.size
        if labels.shape != (height, width):
            raise ShapeMismatchError(
                f"annotation {path} is {labels.shape[1]}x{labels.shape[0]} but frame {frame_path} "
                f"is {width}x{height}"
            )
        return labels

    def object_ids(self, seq: str) -> list[int]:
        """The object ids of a sequence: the non-zero, non-void labels of its first annotation."""
        ids = np.unique(self.read_annotation(seq, 0))
        return [int(i) for i in ids if i != 0 and i != VOID_ID]

    @staticmethod
    def _at(files: list[Path], seq: str, i: int, what: str) -> Path:
        if not -len(files) <= i < len(files):
            raise IndexError(f"{what} index {i} out of range for sequence {seq!r} ({len(files)} {what}s)")
        return files[i]
