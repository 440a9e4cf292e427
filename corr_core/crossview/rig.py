"""A calibrated camera rig for live cross-view matching: poses from a file, intrinsics from
``camera_info``.

``corr_node``'s cross-view mode keeps matches on the query's epipolar band
(:mod:`corr_core.geometry`) when it knows where its cameras are. A rig file gives each
camera's pose in one common frame (for example from a hand-eye or extrinsic calibration)::

    frame: table            # the common frame (for the reader; any frame shared by all cameras)
    cameras:
      ego:
        T_frame_cam: [[1, 0, 0, 0.1], [0, 1, 0, 0], [0, 0, 1, 0.5], [0, 0, 0, 1]]  # optical frame
      exo1:
        T_frame_cam: [...]
        K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]   # optional; else from <cam>/camera_info
        size: [height, width]                      # with K

Poses are static: cameras that move relative to each other (a wrist or head camera) need TF, which
this rig does not read. An RGB-D anchor camera's depth (registered to its colour image) narrows each
query pixel's band to its own depth (:meth:`CameraRig.pair`'s ``src_depth``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from corr_core.errors import ConfigError, CorrError
from corr_core.geometry import CameraPose, ViewGeometry, rigid_transform


class CameraRig:
    """Static camera poses and the latest intrinsics of each camera.

    Args:
        poses: camera -> ``(4, 4)`` camera-to-frame transform of its optical frame (metres).
        intrinsics: camera -> ``(K, (H, W))`` known up front (others come from :meth:`set_intrinsics`).
        source: where the poses come from (named in errors).
    """

    def __init__(self, poses: dict[str, np.ndarray], intrinsics: dict[str, tuple[np.ndarray, tuple[int, int]]] | None = None,
                 source: str = "camera rig") -> None:
        self.source = source
        self.poses = {cam: rigid_transform(T, f"{cam}'s pose") for cam, T in poses.items()}
        self._cameras: dict[str, CameraPose] = {}
        self._lock = threading.Lock()
        for cam, (K, size) in (intrinsics or {}).items():
            self.set_intrinsics(cam, K, size)

    @classmethod
    def from_yaml(cls, path: str | Path) -> CameraRig:
        """Reads a rig file (module docstring).

        Raises:
            ConfigError: a missing or unreadable file, no ``cameras`` mapping, or a camera whose
                pose or intrinsics are not valid (named with the file).
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"camera rig file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        cams = data.get("cameras") if isinstance(data, dict) else None
        if not isinstance(cams, dict) or not cams:
            raise ConfigError(f"{path}: needs a 'cameras' mapping of camera name -> {{T_frame_cam: 4x4}}")
        poses, intrinsics = {}, {}
        for cam, entry in cams.items():
            if not isinstance(entry, dict) or "T_frame_cam" not in entry:
                raise ConfigError(f"{path}: camera {cam!r} has no T_frame_cam (4x4 camera-to-frame transform)")
            try:
                poses[str(cam)] = rigid_transform(entry["T_frame_cam"], "T_frame_cam")
                if entry.get("K") is not None:
                    size = entry.get("size")
                    if not isinstance(size, list) or len(size) != 2:
                        raise ConfigError(f"camera {cam!r}: K needs size: [height, width]")
                    pose = CameraPose(entry["K"], poses[str(cam)], (int(size[0]), int(size[1])))  # checks K
                    intrinsics[str(cam)] = (pose.K, pose.size)
            except (CorrError, ValueError, TypeError) as exc:
                raise ConfigError(f"{path}: camera {cam!r}: {exc}") from exc
        return cls(poses, intrinsics, source=str(path))

    def check_cameras(self, cameras: list[str]) -> None:
        """Raises ConfigError when a camera has no pose in the rig."""
        missing = sorted(set(cameras) - set(self.poses))
        if missing:
            raise ConfigError(f"{self.source}: no pose for camera(s) {missing}; it has {sorted(self.poses)}")

    def set_intrinsics(self, camera: str, K: Any, size: tuple[int, int]) -> None:
        """The camera's intrinsics (``camera_info``'s ``k`` as 3x3, at ``(H, W)``).

        Raises:
            DataError: invalid intrinsics (for example an all-zero ``k`` of an uncalibrated camera).
        """
        if camera not in self.poses:
            return
        K = np.asarray(K, np.float64).reshape(3, 3)
        size = (int(size[0]), int(size[1]))
        current = self._cameras.get(camera)
        if current is not None and current.size == size and np.array_equal(current.K, K):
            return  # camera_info repeats itself at the camera's rate
        pose = CameraPose(K, self.poses[camera], size)
        with self._lock:
            self._cameras[camera] = pose

    def pair(self, src: str, tgt: str, src_depth: np.ndarray | None = None) -> ViewGeometry | None:
        """Both cameras' geometry (with the source camera's depth image, ``(H, W)`` metres
        registered to its colour image, where given), or None while one has no intrinsics yet."""
        with self._lock:
            a, b = self._cameras.get(src), self._cameras.get(tgt)
        return ViewGeometry(a, b, src_depth) if a is not None and b is not None else None

    def describe(self) -> dict[str, Any]:
        """Which cameras have a pose and which have intrinsics so far."""
        with self._lock:
            return {"source": self.source, "posed": sorted(self.poses), "intrinsics": sorted(self._cameras)}
