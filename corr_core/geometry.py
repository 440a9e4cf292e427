"""Two-view geometry for cross-view matching: where in the target camera an object of the source
camera can be, given calibrated cameras.

A robot knows its cameras: intrinsics from ``camera_info``, poses from TF. A pixel of the source
view is a ray; seen from the target camera, the part of the ray between ``near`` and ``far`` metres
is a segment of the pixel's epipolar line. The object lies somewhere on the segments of its
pixels, whatever its depth. A look-alike elsewhere on the table is, most of the time, off that
band: colour and learned features cannot tell twins apart, geometry can.

:func:`epipolar_distance` gives, for each target pixel, the distance (pixels) to the nearest such
segment; :func:`epipolar_weights` turns it into a weight in [0, 1] per (query, proposal), which the
matchers multiply into their scores. An object whose segments all miss the target image gets
weights near 0 everywhere: it is outside that camera's field of view.

Conventions (those of ``corr generate sim`` and ROS optical frames): ``K`` is the 3x3 pinhole
matrix at the image size given; ``T_world_cam`` the 4x4 camera-to-world transform of the optical
frame (x right, y down, z forward), metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from corr_core.errors import ConfigError, DataError

#: the target grid the distances are computed on: its longer side (weights barely change below it)
GRID_SIDE = 160


def rigid_transform(T: object, what: str = "T_world_cam") -> np.ndarray:
    """``T`` as a float64 ``(4, 4)`` rigid transform (rotation and translation).

    Raises:
        DataError: not finite 4x4 with last row ``[0, 0, 0, 1]``, or a rotation part that is not a
            rotation (a reflection, a transposed or scaled matrix), named as ``what``.
    """
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all() or not np.allclose(T[3], [0, 0, 0, 1]):
        raise DataError(f"camera pose: {what} must be a finite 4x4 rigid transform, got {T.tolist()}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-3) or np.linalg.det(R) < 0:
        raise DataError(f"camera pose: the rotation of {what} is not a rotation (R R^T != I), got {R.tolist()}")
    return T


def pose_matrix(position: object, quaternion: object, what: str = "pose") -> np.ndarray:
    """The ``(4, 4)`` rigid transform of a position ``(x, y, z)`` and a unit quaternion
    ``(x, y, z, w)`` (``geometry_msgs/Pose``'s order); the quaternion is normalised first.

    Raises:
        DataError: non-finite values, or a quaternion of (near) zero length, named as ``what``.
    """
    t = np.asarray(position, np.float64).reshape(-1)
    q = np.asarray(quaternion, np.float64).reshape(-1)
    if t.shape != (3,) or q.shape != (4,) or not (np.isfinite(t).all() and np.isfinite(q).all()):
        raise DataError(f"{what}: needs a finite position (x, y, z) and orientation (x, y, z, w), got "
                        f"{t.tolist()}, {q.tolist()}")
    if np.linalg.norm(q) < 1e-6:
        raise DataError(f"{what}: the orientation quaternion {q.tolist()} has no length (not set?)")
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(q).as_matrix()  # normalises q
    T[:3, 3] = t
    return T


def pose_quaternion(T: object, what: str = "pose") -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """A rigid transform as a position ``(x, y, z)`` and a unit quaternion ``(x, y, z, w)``
    (``geometry_msgs/Pose``'s order): the inverse of :func:`pose_matrix`.

    Raises:
        DataError: ``T`` is not a rigid 4x4 transform (named as ``what``).
    """
    from scipy.spatial.transform import Rotation

    T = rigid_transform(T, what)
    x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
    return (float(T[0, 3]), float(T[1, 3]), float(T[2, 3])), (float(x), float(y), float(z), float(w))


def check_intrinsics(K: object, size: object) -> tuple[np.ndarray, tuple[int, int]]:
    """``K`` as a float64 ``(3, 3)`` pinhole matrix and ``size`` as ``(H, W)``.

    Raises:
        DataError: not a finite 3x3 matrix with ``fx, fy > 0`` (an uncalibrated camera_info's
            all-zero ``k``), or a size that is not two positive sides.
    """
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError(f"camera intrinsics: K must be a finite 3x3 pinhole matrix with fx, fy > 0, got {K.tolist()}")
    if len(size) != 2 or min(size) < 1:  # type: ignore[arg-type]
        raise DataError(f"camera intrinsics: size must be (H, W) > 0, got {size}")
    return K, (int(size[0]), int(size[1]))  # type: ignore[index]


@dataclass(frozen=True)
class CameraPose:
    """A calibrated camera at one instant.

    Attributes:
        K: ``(3, 3)`` intrinsics at ``size``.
        T_world_cam: ``(4, 4)`` camera-to-world transform of the optical frame (metres).
        size: ``(H, W)`` of the images ``K`` belongs to.
    """

    K: np.ndarray
    T_world_cam: np.ndarray
    size: tuple[int, int]

    def __post_init__(self) -> None:
        K, size = check_intrinsics(self.K, self.size)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "T_world_cam", rigid_transform(self.T_world_cam))
        object.__setattr__(self, "size", size)

    def at(self, size: tuple[int, int]) -> CameraPose:
        """The same camera for images resized to ``(H, W)`` (pixel centres kept, OpenCV convention)."""
        if tuple(size) == self.size:
            return self
        sy, sx = size[0] / self.size[0], size[1] / self.size[1]
        K = self.K.copy()
        K[0] *= sx
        K[1] *= sy
        K[0, 2] += 0.5 * sx - 0.5
        K[1, 2] += 0.5 * sy - 0.5
        return CameraPose(K, self.T_world_cam, (int(size[0]), int(size[1])))

    def fitted(self, size: tuple[int, int]) -> CameraPose:
        """This camera for its images brought to ``(H, W)`` by
        :func:`~corr_core.methods.pcc.scenes.fit_size` (scaled to cover, then centre-cropped)."""
        h, w = self.size
        th, tw = int(size[0]), int(size[1])
        scale = max(th / h, tw / w)
        covered = (max(th, round(h * scale)), max(tw, round(w * scale))) if abs(scale - 1.0) > 1e-6 else (h, w)
        pose = self.at(covered)
        K = pose.K.copy()
        K[0, 2] -= (covered[1] - tw) // 2
        K[1, 2] -= (covered[0] - th) // 2
        return CameraPose(K, self.T_world_cam, (th, tw))

    @classmethod
    def from_sim(cls, meta: dict, camera: str, t: int) -> CameraPose:
        """Camera ``camera`` at frame ``t`` of a ``corr generate sim`` episode's metadata.

        Raises:
            DataError: metadata without that camera's calibration (an episode written before it).
        """
        cam = (meta.get("cameras") or {}).get(camera)
        if not cam or "K" not in cam or "T_world_cam" not in cam:
            raise DataError(f"episode {meta.get('name', '?')}: no calibration for camera {camera!r} in its metadata")
        T = np.asarray(cam["T_world_cam"], np.float64)
        return cls(np.asarray(cam["K"]), T[t] if T.ndim == 3 else T, (int(cam["height"]), int(cam["width"])))

    def perturbed(self, rot_deg: float, trans_m: float, rng: np.random.Generator) -> CameraPose:
        """This camera with its pose off by ``rot_deg`` degrees about a random axis and ``trans_m``
        metres in a random direction: a calibration error, for robustness checks."""
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        step = rng.normal(size=3)
        step *= trans_m / np.linalg.norm(step)
        R, _ = cv2.Rodrigues(axis * np.deg2rad(rot_deg))
        T = self.T_world_cam.copy()
        T[:3, :3] = T[:3, :3] @ R
        T[:3, 3] += step
        return CameraPose(self.K, T, self.size)


@dataclass(frozen=True)
class ViewGeometry:
    """The two cameras of a match request: ``src`` (where the labels are) and ``tgt``.

    Attributes:
        src, tgt: the cameras.
        src_depth: optional ``(H1, W1)`` depth of the source view in metres along its optical axis
            (0 or NaN: unknown), from an RGB-D camera. Each pixel's depth then narrows its band
            from a line to a short stretch: twins in line with both cameras, on one epipolar line,
            come apart.
        depth_tolerance: relative error of ``src_depth`` allowed (sensor noise, mask edges).
    """

    src: CameraPose
    tgt: CameraPose
    src_depth: np.ndarray | None = None
    depth_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if self.src_depth is None:
            return
        depth = np.asarray(self.src_depth, np.float32)
        if depth.ndim != 2:
            raise DataError(f"source depth must be (H, W) metres, got shape {depth.shape}")
        if not 0.0 <= self.depth_tolerance < 1.0:
            raise ConfigError(f"depth_tolerance must be in [0, 1), got {self.depth_tolerance}")
        object.__setattr__(self, "src_depth", depth)

    def src_to_tgt(self) -> np.ndarray:
        """``(4, 4)`` transform from the source optical frame to the target's."""
        return np.linalg.inv(self.tgt.T_world_cam) @ self.src.T_world_cam

    def pixel_depths(self, mask: np.ndarray, pixels: np.ndarray, depth_range: tuple[float, float]
                     ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(near, far)`` ``(P,)`` for source ``pixels`` ``(P, 2)`` (x, y) of ``mask``: each pixel's
        depth within ``depth_tolerance``, clamped to the 10th-90th percentile of the object's valid
        depths (mask edges that see the table behind); the median where a pixel has none. None
        without depth or without a valid depth on the object."""
        if self.src_depth is None:
            return None
        depth = self.src_depth
        if depth.shape != mask.shape:
            depth = cv2.resize(depth, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
        values = depth[mask]
        values = values[np.isfinite(values) & (values > 0)]
        if not len(values):
            return None
        lo, mid, hi = np.percentile(values, [10, 50, 90])
        d = depth[pixels[:, 1].astype(int), pixels[:, 0].astype(int)].astype(np.float64)
        d = np.where(np.isfinite(d) & (d > 0), d, mid).clip(lo, hi)
        near = np.maximum(d * (1 - self.depth_tolerance), depth_range[0])
        far = np.minimum(d * (1 + self.depth_tolerance), depth_range[1])
        return near, np.maximum(far, near * (1 + 1e-6))


def _samples(mask: np.ndarray, count: int) -> np.ndarray:
    """``(P, 2)`` x, y of at most ``count`` pixels spread over ``mask`` (deterministic)."""
    ys, xs = np.nonzero(mask)
    if len(xs) > count:
        pick = np.linspace(0, len(xs) - 1, count).round().astype(int)
        ys, xs = ys[pick], xs[pick]
    return np.stack([xs, ys], 1).astype(np.float64)


def _segments(geometry: ViewGeometry, pixels: np.ndarray, depth_range: tuple[np.ndarray | float, np.ndarray | float]
              ) -> tuple[np.ndarray, np.ndarray]:
    """The target-image segments ``(a, b)`` ``(P', 2)`` of the source ``pixels``' rays between
    ``near`` and ``far`` (depth along the source optical axis; scalars or one per pixel), cut to
    the part in front of the target camera; rays wholly behind it are dropped."""
    near, far = depth_range
    rays = np.linalg.solve(geometry.src.K, np.c_[pixels, np.ones(len(pixels))].T)  # (3, P), z = 1
    T = geometry.src_to_tgt()
    ends = [T[:3, :3] @ (rays * z) + T[:3, 3:] for z in (near, far)]  # points in the target frame
    a, b = ends
    eps = 1e-3
    za, zb = a[2], b[2]
    keep = (za > eps) | (zb > eps)
    # move an end behind the camera along the segment to just in front of it
    for p, q, zp, zq in ((a, b, za, zb), (b, a, zb, za)):
        behind = keep & (zp <= eps)
        if behind.any():
            t = (eps - zp[behind]) / (zq[behind] - zp[behind])
            p[:, behind] = p[:, behind] + t * (q[:, behind] - p[:, behind])
    a, b = a[:, keep], b[:, keep]
    K = geometry.tgt.K
    project = lambda X: ((K @ X)[:2] / X[2]).T  # noqa: E731
    return project(a), project(b)


def epipolar_distance(geometry: ViewGeometry, mask: np.ndarray, depth_range: tuple[float, float] = (0.1, 10.0),
                      samples: int = 48, grid: tuple[int, int] | None = None) -> np.ndarray:
    """Distance (target pixels) from each target pixel to the nearest epipolar segment of ``mask``.

    Args:
        geometry: the two cameras, their ``size`` that of the images matched.
        mask: ``(H1, W1)`` bool object mask in the source view.
        depth_range: ``(near, far)`` metres along the source optical axis where the object can be
            (each pixel's own depth where the geometry has source depth).
        samples: source pixels whose rays are followed (spread over the mask).
        grid: ``(h, w)`` to compute at (distances still in full-size target pixels); default the
            target size.

    Returns:
        ``(h, w)`` float32; ``inf`` everywhere when the mask is empty or every ray passes behind
        the target camera.
    """
    h, w = grid or geometry.tgt.size
    if mask.shape != geometry.src.size:
        raise DataError(f"epipolar distance: mask {mask.shape} is not the source camera's size {geometry.src.size}")
    out = np.full((h, w), np.inf, np.float32)
    pixels = _samples(mask, samples)
    if not len(pixels):
        return out
    a, b = _segments(geometry, pixels, geometry.pixel_depths(mask, pixels, depth_range) or depth_range)
    if not len(a):
        return out
    H, W = geometry.tgt.size
    ys, xs = np.meshgrid((np.arange(h) + 0.5) * H / h - 0.5, (np.arange(w) + 0.5) * W / w - 0.5, indexing="ij")
    p = np.stack([xs.ravel(), ys.ravel()], 1)  # (hw, 2)
    best = np.full(len(p), np.inf)
    for start in range(0, len(a), 16):  # (16, hw) at a time
        sa, sb = a[start : start + 16], b[start : start + 16]
        d = sb - sa
        length2 = np.maximum((d**2).sum(1), 1e-12)
        t = np.clip(((p[None] - sa[:, None]) * d[:, None]).sum(2) / length2[:, None], 0.0, 1.0)
        closest = sa[:, None] + t[..., None] * d[:, None]
        best = np.minimum(best, np.sqrt(((p[None] - closest) ** 2).sum(2)).min(0))
    out[:] = best.reshape(h, w)
    return out


def check_epipolar(sigma: float, depth_range: tuple[float, float]) -> None:
    """Raises ConfigError on a band width or depth range that cannot work."""
    if not 0.0 < float(sigma) <= 1.0:
        raise ConfigError(f"epipolar_sigma must be in (0, 1] (a fraction of the target's longer side), got {sigma}")
    near, far = depth_range
    if not 0.0 < near < far:
        raise ConfigError(f"depth_range must be 0 < near < far (metres), got {depth_range}")


def _grid(size: tuple[int, int]) -> tuple[int, int]:
    scale = min(1.0, GRID_SIDE / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def epipolar_maps(geometry: ViewGeometry, queries: np.ndarray, sigma: float = 0.03,
                  depth_range: tuple[float, float] = (0.1, 10.0)) -> np.ndarray:
    """``(Q, h, w)`` weights in [0, 1], ``exp(-d^2 / 2 s^2)`` with ``d`` the epipolar distance of
    each query mask ``(Q, H1, W1)`` and ``s = sigma`` x the target's longer side, on a grid of
    longer side :data:`GRID_SIDE`."""
    check_epipolar(sigma, depth_range)
    grid = _grid(geometry.tgt.size)
    s = float(sigma) * max(geometry.tgt.size)
    return np.stack([np.exp(-0.5 * (epipolar_distance(geometry, m, depth_range, grid=grid) / s) ** 2)
                     for m in queries]).astype(np.float32)


def epipolar_weights(geometry: ViewGeometry, queries: np.ndarray, candidates: np.ndarray, sigma: float = 0.03,
                     depth_range: tuple[float, float] = (0.1, 10.0)) -> np.ndarray:
    """``(Q, N)``: how well each candidate mask ``(N, H2, W2)`` lies on each query's epipolar band,
    the mean of :func:`epipolar_maps` over the candidate's pixels (0 for an empty candidate)."""
    return candidate_weights(epipolar_maps(geometry, queries, sigma, depth_range), candidates)


def candidate_weights(maps: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``(Q, N)``: the mean of each weight map ``(Q, h, w)`` over each candidate mask ``(N, H, W)``."""
    if not len(candidates):
        return np.zeros((len(maps), 0), np.float32)
    h, w = maps.shape[1:]
    # each candidate's share of each grid cell, so that small ones keep their pixels
    cover = np.stack([cv2.resize(c.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) for c in candidates])
    cover = cover.reshape(len(candidates), -1)
    area = cover.sum(1)
    return (maps.reshape(len(maps), -1) @ cover.T / np.maximum(area, 1e-6)[None]).astype(np.float32)


def map_to(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(Q, h, w)`` weight maps at ``(H, W)`` (bilinear)."""
    return np.stack([cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for m in maps])
