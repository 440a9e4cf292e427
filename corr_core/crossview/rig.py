"""A calibrated camera rig for live cross-view matching: poses from a file or a pose topic,
intrinsics from ``camera_info``.

``corr_node``'s cross-view mode keeps matches on the query's epipolar band
(:mod:`corr_core.geometry`) when it knows where its cameras are. A rig file gives each
camera's pose in one common frame (for example from a hand-eye or extrinsic calibration)::

    frame: table            # the common frame (pose messages must be in it)
    cameras:
      ego:
        moving: true        # a head or wrist camera: its pose comes with each frame (<cam>/pose)
      exo1:
        T_frame_cam: [[1, 0, 0, 0.1], [0, 1, 0, 0], [0, 0, 1, 0.5], [0, 0, 0, 1]]  # optical frame
        K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]   # optional; else from <cam>/camera_info
        size: [height, width]                      # with K

A static camera has ``T_frame_cam``; a *moving* one has its pose given per frame (the node reads
``<cam>/pose``, a ``geometry_msgs/PoseStamped`` of the camera's optical frame in ``frame``, stamped
like its images: what a TF lookup of the camera frame gives, relayed). An RGB-D anchor camera's
depth (registered to its colour image) narrows each query pixel's band to its own depth
(:meth:`CameraRig.pair`'s ``src_depth``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from corr_core.errors import ConfigError, CorrError
from corr_core.geometry import CameraPose, ViewGeometry, check_intrinsics, rigid_transform


class CameraRig:
    """Camera poses (static, or given per frame for moving cameras) and the latest intrinsics of
    each camera.

    Args:
        poses: camera -> ``(4, 4)`` camera-to-frame transform of its optical frame (metres), for
            static cameras.
        intrinsics: camera -> ``(K, (H, W))`` known up front (others come from :meth:`set_intrinsics`).
        source: where the poses come from (named in errors).
        moving: cameras whose pose is given with each frame (:meth:`pair`'s ``poses``).
        frame: the common frame's name ("" when the file does not name one).
    """

    def __init__(self, poses: dict[str, np.ndarray], intrinsics: dict[str, tuple[np.ndarray, tuple[int, int]]] | None = None,
                 source: str = "camera rig", moving: list[str] | tuple[str, ...] = (), frame: str = "") -> None:
        self.source, self.frame = source, str(frame)
        self.poses = {cam: rigid_transform(T, f"{cam}'s pose") for cam, T in poses.items()}
        self.moving = frozenset(str(c) for c in moving)
        both = sorted(self.moving & set(self.poses))
        if both:
            raise ConfigError(f"{source}: camera(s) {both} are both moving and static (give T_frame_cam or "
                              "moving: true, not both)")
        self._intrinsics: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}
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
            raise ConfigError(f"{path}: needs a 'cameras' mapping of camera name -> {{T_frame_cam: 4x4}} "
                              "or {moving: true}")
        poses, intrinsics, moving = {}, {}, []
        for cam, entry in cams.items():
            if not isinstance(entry, dict) or ("T_frame_cam" not in entry and entry.get("moving") is not True):
                raise ConfigError(f"{path}: camera {cam!r} has no T_frame_cam (4x4 camera-to-frame transform) "
                                  "and is not moving: true (pose per frame on <cam>/pose)")
            try:
                if entry.get("moving") is True:
                    moving.append(str(cam))
                    if "T_frame_cam" in entry:
                        raise ConfigError("give T_frame_cam (static) or moving: true, not both")
                else:
                    poses[str(cam)] = rigid_transform(entry["T_frame_cam"], "T_frame_cam")
                if entry.get("K") is not None:
                    size = entry.get("size")
                    if not isinstance(size, list) or len(size) != 2:
                        raise ConfigError(f"camera {cam!r}: K needs size: [height, width]")
                    intrinsics[str(cam)] = check_intrinsics(entry["K"], size)
            except (CorrError, ValueError, TypeError) as exc:
                raise ConfigError(f"{path}: camera {cam!r}: {exc}") from exc
        return cls(poses, intrinsics, source=str(path), moving=moving, frame=str(data.get("frame") or ""))

    def check_cameras(self, cameras: list[str]) -> None:
        """Raises ConfigError when a camera has no pose in the rig (static or moving)."""
        missing = sorted(set(cameras) - set(self.poses) - self.moving)
        if missing:
            raise ConfigError(f"{self.source}: no pose for camera(s) {missing}; it has "
                              f"{sorted(set(self.poses) | self.moving)}")

    def set_intrinsics(self, camera: str, K: Any, size: tuple[int, int]) -> None:
        """The camera's intrinsics (``camera_info``'s ``k`` as 3x3, at ``(H, W)``).

        Raises:
            DataError: invalid intrinsics (for example an all-zero ``k`` of an uncalibrated camera).
        """
        if camera not in self.poses and camera not in self.moving:
            return
        K = np.asarray(K, np.float64).reshape(3, 3)
        size = (int(size[0]), int(size[1]))
        current = self._intrinsics.get(camera)
        if current is not None and current[1] == size and np.array_equal(current[0], K):
            return  # camera_info repeats itself at the camera's rate
        checked = check_intrinsics(K, size)
        with self._lock:
            self._intrinsics[camera] = checked

    def pair(self, src: str, tgt: str, src_depth: np.ndarray | None = None,
             poses: dict[str, np.ndarray] | None = None) -> ViewGeometry | None:
        """Both cameras' geometry (with the source camera's depth image, ``(H, W)`` metres
        registered to its colour image, where given), or None while one has no intrinsics yet or,
        moving, no pose in ``poses`` (camera -> its ``(4, 4)`` pose in the rig's frame at this set)."""
        cams = []
        for cam in (src, tgt):
            with self._lock:
                known = self._intrinsics.get(cam)
            T = (poses or {}).get(cam) if cam in self.moving else self.poses.get(cam)
            if known is None or T is None:
                return None
            cams.append(CameraPose(known[0], T, known[1]))
        return ViewGeometry(cams[0], cams[1], src_depth)

    def missing(self, src: str, tgt: str, poses: dict[str, np.ndarray] | None = None) -> list[str]:
        """What :meth:`pair` lacks for these cameras (empty when it has everything), for messages."""
        out = []
        for cam in dict.fromkeys((src, tgt)):
            with self._lock:
                known = cam in self._intrinsics
            if not known:
                out.append(f"{cam}'s intrinsics ({cam}/camera_info)")
            if cam in self.moving and (poses or {}).get(cam) is None:
                out.append(f"{cam}'s pose ({cam}/pose within the slop)")
        return out

    def describe(self) -> dict[str, Any]:
        """Which cameras have a pose (static, moving) and which have intrinsics so far."""
        with self._lock:
            return {"source": self.source, "frame": self.frame, "posed": sorted(self.poses),
                    "moving": sorted(self.moving), "intrinsics": sorted(self._intrinsics)}
