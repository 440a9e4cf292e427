"""JHMDB (Jhuang et al., ICCV 2013) frames and joint annotations, as read by the CRW/UVC protocol.

Layout of the data set::

    root/Frames/<class>/<video>/00001.png ...                      (frames, 1-based numbering)
    root/joint_positions/<class>/<video>/joint_positions.mat       (MATLAB file, see below)

``joint_positions.mat`` holds ``pos_img``, a ``(2, 15, T)`` array of MATLAB (1-based) pixel
coordinates ``(x, y)`` of the 15 puppet joints in each of the ``T`` frames, plus ``pos_world``
(same shape, normalised puppet coordinates), ``scale`` (``T`` values) and ``viewpoint`` (``T``
strings). CRW (``ajabri/videowalk``, ``code/data/jhmdb.py`` and ``code/eval/eval_pck.py``) and UVC
(``Liusifei/UVC``, ``eval_pck.py``) both subtract 1 from ``pos_img`` before anything else, so the
readers here return 0-based pixel coordinates by default.

The CRW/UVC test lists hold one video per line: ``<frames folder> <joint_positions.mat>`` (CRW) or
the two the other way round (UVC); :func:`read_filelist` accepts both orders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corr_core.errors import ConfigError, DataError

#: Number of joints of the JHMDB puppet.
NUM_JOINTS = 15

#: Joint names in the order of ``pos_img`` (JHMDB README).
JOINT_NAMES = (
    "neck",
    "belly",
    "face",
    "right_shoulder",
    "left_shoulder",
    "right_hip",
    "left_hip",
    "right_elbow",
    "left_elbow",
    "right_knee",
    "left_knee",
    "right_wrist",
    "left_wrist",
    "right_ankle",
    "left_ankle",
)

_FRAME_RE = re.compile(r"^(\d+)\.png$")


@dataclass(frozen=True)
class JointAnnotation:
    """The contents of one ``joint_positions.mat``.

    Attributes:
        pos_img: ``(T, J, 2) float64`` joint positions ``(x, y)`` in image pixels (0-based unless
            read with ``zero_based=False``).
        pos_world: ``(T, J, 2) float64`` normalised puppet coordinates, or None when absent.
        scale: ``(T,) float64`` puppet scale per frame, or None when absent.
        viewpoint: one string per frame, or None when absent.
    """

    pos_img: np.ndarray
    pos_world: np.ndarray | None
    scale: np.ndarray | None
    viewpoint: tuple[str, ...] | None

    @property
    def num_frames(self) -> int:
        """``T``, the number of annotated frames."""
        return int(self.pos_img.shape[0])


@dataclass(frozen=True)
class JhmdbVideo:
    """One JHMDB video: its frames and its joint annotation file."""

    frames_dir: Path
    joints_path: Path

    def frame_paths(self) -> list[Path]:
        """The video's frames in numeric order (see :func:`list_frames`)."""
        return list_frames(self.frames_dir)

    def joints(self, zero_based: bool = True) -> np.ndarray:
        """``(T, 15, 2)`` joint positions (see :func:`load_joint_positions`)."""
        return load_joint_positions(self.joints_path, zero_based=zero_based)


def _loadmat(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"JHMDB joint file not found: {path}")
    import scipy.io  # local import: scipy is only needed for JHMDB

    try:
        return scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for broken or non-MATLAB files
        raise DataError(f"{path}: not a readable MATLAB .mat file ({exc})") from exc


def _joint_array(mat: dict, path: Path, field: str, num_joints: int | None) -> np.ndarray:
    """A ``(2, J, T)`` field as a ``(T, J, 2) float64`` array, validated."""
    if field not in mat:
        present = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: missing field {field!r} (fields present: {present})")
    try:
        arr = np.asarray(mat[field], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: field {field!r} is not numeric ({exc})") from exc
    if arr.ndim == 2 and arr.shape[0] == 2:
        arr = arr[:, :, None]  # scipy squeezes nothing, but a one-frame file saved by hand may be 2-D
    if arr.ndim != 3 or arr.shape[0] != 2 or arr.shape[2] < 1:
        raise DataError(f"{path}: field {field!r} must have shape (2, J, T) with T >= 1, got {arr.shape}")
    if num_joints is not None and arr.shape[1] != num_joints:
        raise DataError(f"{path}: field {field!r} must have {num_joints} joints, got shape {arr.shape}")
    return np.ascontiguousarray(arr.transpose(2, 1, 0))


def load_joint_positions(
    path: str | Path, zero_based: bool = True, num_joints: int | None = NUM_JOINTS
) -> np.ndarray:
    """Reads ``pos_img`` from a JHMDB ``joint_positions.mat``.

    Args:
        path: the ``.mat`` file.
        zero_based: subtract 1 from the MATLAB coordinates, as CRW and UVC do (default).
        num_joints: the joint count to require (15 for JHMDB); None accepts any.

    Returns:
        ``(T, J, 2) float64`` positions ``(x, y)`` in image pixels.

    Raises:
        DataError: if the file is missing or unreadable, has no ``pos_img`` field, or the field is
            not a numeric ``(2, J, T)`` array (the message names the file).
    """
    path = Path(path)
    pos = _joint_array(_loadmat(path), path, "pos_img", num_joints)
    return pos - 1.0 if zero_based else pos


def _optional_vector(mat: dict, path: Path, field: str, num_frames: int) -> np.ndarray | None:
    if field not in mat:
        return None
    try:
        vec = np.asarray(mat[field], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: field {field!r} is not numeric ({exc})") from exc
    if vec.size != num_frames:
        raise DataError(f"{path}: field {field!r} has {vec.size} values for {num_frames} frames")
    return vec


def _as_string(value: object) -> str:
    """A MATLAB string as loaded by scipy (a str, a 0-d/1-element array, or a nested cell)."""
    arr = np.asarray(value)
    while arr.dtype == object and arr.size == 1:
        arr = np.asarray(arr.reshape(-1)[0])
    return "".join(str(v) for v in arr.reshape(-1))


def _optional_strings(mat: dict, path: Path, field: str, num_frames: int) -> tuple[str, ...] | None:
    if field not in mat:
        return None
    out = tuple(_as_string(v) for v in np.asarray(mat[field], dtype=object).reshape(-1))
    if len(out) != num_frames:
        raise DataError(f"{path}: field {field!r} has {len(out)} entries for {num_frames} frames")
    return out


def load_joint_annotation(
    path: str | Path, zero_based: bool = True, num_joints: int | None = NUM_JOINTS
) -> JointAnnotation:
    """Reads every field of a JHMDB ``joint_positions.mat`` that the evaluation may use.

    ``pos_img`` is required (see :func:`load_joint_positions`); ``pos_world``, ``scale`` and
    ``viewpoint`` are optional and come back as None when absent.

    Raises:
        DataError: for a missing/unreadable file, a missing ``pos_img``, or any field whose shape
            or length disagrees with ``pos_img`` (the message names the file and the field).
    """
    path = Path(path)
    mat = _loadmat(path)
    pos_img = _joint_array(mat, path, "pos_img", num_joints)
    if zero_based:
        pos_img = pos_img - 1.0
    t = pos_img.shape[0]
    pos_world = _joint_array(mat, path, "pos_world", pos_img.shape[1]) if "pos_world" in mat else None
    if pos_world is not None and pos_world.shape[0] != t:
        raise DataError(f"{path}: 'pos_world' has {pos_world.shape[0]} frames, 'pos_img' has {t}")
    return JointAnnotation(
        pos_img=pos_img,
        pos_world=pos_world,
        scale=_optional_vector(mat, path, "scale", t),
        viewpoint=_optional_strings(mat, path, "viewpoint", t),
    )


def list_frames(frames_dir: str | Path) -> list[Path]:
    """The ``<number>.png`` frames of a JHMDB video folder, sorted by number (as CRW does).

    Raises:
        DataError: if the folder is missing or holds no numbered PNG.
    """
    frames_dir = Path(frames_dir)
    if not frames_dir.is_dir():
        raise DataError(f"JHMDB frame folder not found: {frames_dir}")
    numbered = []
    for p in frames_dir.iterdir():
        m = _FRAME_RE.match(p.name)
        if m:
            numbered.append((int(m.group(1)), p))
    if not numbered:
        raise DataError(f"JHMDB frame folder {frames_dir} holds no numbered .png frames")
    numbered.sort()
    return [p for _, p in numbered]


def video_paths(root: str | Path, action: str, video: str) -> JhmdbVideo:
    """The frame folder and joint file of ``<action>/<video>`` in the official JHMDB layout.

    Raises:
        DataError: if either path is missing.
    """
    root = Path(root)
    frames_dir = root / "Frames" / action / video
    joints = root / "joint_positions" / action / video / "joint_positions.mat"
    if not frames_dir.is_dir():
        raise DataError(f"JHMDB frame folder not found: {frames_dir}")
    if not joints.is_file():
        raise DataError(f"JHMDB joint file not found: {joints}")
    return JhmdbVideo(frames_dir=frames_dir, joints_path=joints)


def read_filelist(path: str | Path) -> list[JhmdbVideo]:
    """Parses a CRW/UVC JHMDB test list (one ``<frames folder> <.mat file>`` pair per line).

    The two columns may come in either order (CRW puts the folder first, UVC the ``.mat``); a
    second column without ``.mat`` suffix is taken as a folder holding ``joint_positions.mat``.
    Relative paths are taken relative to the list's folder. Blank lines and ``#`` comments are
    skipped.

    Raises:
        DataError: if the file is missing, empty, or a line does not hold two columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"JHMDB file list not found: {path}")
    videos = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = line.split()
        if len(cols) < 2:
            raise DataError(
                f"{path}:{lineno}: expected '<frames folder> <joint_positions.mat>', got {line!r}"
            )
        a, b = (Path(c) if Path(c).is_absolute() else path.parent / c for c in cols[:2])
        if a.suffix == ".mat":
            a, b = b, a
        if b.suffix != ".mat":
            b = b / "joint_positions.mat"
        videos.append(JhmdbVideo(frames_dir=a, joints_path=b))
    if not videos:
        raise DataError(f"JHMDB file list {path} lists no videos")
    return videos


def discover_videos(root: str | Path) -> list[JhmdbVideo]:
    """Every ``Frames/<class>/<video>`` of an official-layout root that has a joint file.

    Raises:
        DataError: if ``root/Frames`` is missing or no video has a ``joint_positions.mat``.
    """
    root = Path(root)
    frames_root = root / "Frames"
    if not frames_root.is_dir():
        raise DataError(f"JHMDB root {root} has no Frames/ folder (expected Frames/<class>/<video>/)")
    videos = []
    for frames_dir in sorted(p for p in frames_root.glob("*/*") if p.is_dir()):
        joints = root / "joint_positions" / frames_dir.parent.name / frames_dir.name / "joint_positions.mat"
        if joints.is_file():
            videos.append(JhmdbVideo(frames_dir=frames_dir, joints_path=joints))
    if not videos:
        raise DataError(
            f"no JHMDB video with joint_positions/<class>/<video>/joint_positions.mat under {root}"
        )
    return videos


def _rebase(path: Path, base: Path, root: Path) -> Path:
    """``path`` re-anchored from ``base`` onto ``root`` when it was relative to ``base``."""
    try:
        return root / path.relative_to(base)
    except ValueError:
        return path


def resolve_videos(root: str | Path | None = None, filelist: str | Path | None = None) -> list[JhmdbVideo]:
    """The videos to evaluate: those of a CRW/UVC test list, else every video under ``root``.

    A relative ``filelist`` that does not exist is also looked up in ``root``. Relative paths in
    the list are taken relative to the list's folder; when such a path does not exist and ``root``
    is given, relative to ``root`` instead.

    Raises:
        ConfigError: if neither argument is given.
        DataError: for a missing list/folder or a listed video whose frames or joints are missing.
    """
    if filelist is None:
        if root is None:
            raise ConfigError("JHMDB evaluation needs a root folder or a file list")
        return discover_videos(root)
    filelist = Path(filelist)
    if not filelist.is_file() and root is not None and not filelist.is_absolute():
        if (Path(root) / filelist).is_file():
            filelist = Path(root) / filelist
    videos = read_filelist(filelist)
    if root is not None:
        root = Path(root)
        base = filelist.parent
        videos = [
            JhmdbVideo(
                frames_dir=v.frames_dir if v.frames_dir.is_dir() else _rebase(v.frames_dir, base, root),
                joints_path=v.joints_path if v.joints_path.is_file() else _rebase(v.joints_path, base, root),
            )
            for v in videos
        ]
    for v in videos:
        if not v.frames_dir.is_dir():
            raise DataError(f"{filelist}: JHMDB frame folder not found: {v.frames_dir}")
        if not v.joints_path.is_file():
            raise DataError(f"{filelist}: JHMDB joint file not found: {v.joints_path}")
    return videos


def video_name(video: JhmdbVideo) -> str:
    """``<class>/<video>``: the name of a video in reports and output paths."""
    return f"{video.frames_dir.parent.name}/{video.frames_dir.name}"
