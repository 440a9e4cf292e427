"""Renders a :class:`~corr_core.data.sim.scene.SceneSpec` with MuJoCo: RGB, instance ids, depth.

One ``mujoco.Renderer`` (OSMesa on a CPU-only machine) serves every camera; each camera frame is
three passes over the same scene: colour, segmentation (geom ids, mapped to instance ids through
geom -> body -> object) and depth (metric distance along the optical axis).

Camera conventions (also written into the episode metadata):

* intrinsics ``K`` (3x3): square pixels, ``f = (H / 2) / tan(fovy / 2)``, principal point at the
  image centre in the OpenCV convention (pixel centres at integer coordinates):
  ``cx = (W - 1) / 2``, ``cy = (H - 1) / 2``;
* extrinsics ``T_world_cam`` (4x4): camera-to-world transform of the *optical* frame (x right,
  y down, z forward, as ROS ``<cam>_optical_frame``), so a pixel ``(u, v)`` with depth ``d``
  is at ``T_world_cam @ [d * K^-1 @ (u, v, 1), 1]`` in the world.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import mujoco
import numpy as np

from corr_core.data.sim.mjcf import build_mjcf
from corr_core.data.sim.motion import arm_links, finger_poses, plan_trajectories, quat_yaw
from corr_core.data.sim.scene import SceneSpec
from corr_core.errors import ConfigError

_OPTICAL_FROM_MUJOCO = np.diag([1.0, -1.0, -1.0])  # MuJoCo camera axes: x right, y up, z backward
_HIDDEN_GROUP = 5  # geom group not shown by default scene options (groups 0-2 are)


def intrinsics_from_fovy(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole ``K`` (3x3 float64) of a camera with vertical field of view ``fovy_deg``."""
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


class SceneRenderer:
    """Renders an episode frame by frame; close it (or use ``with``) to free the GL context.

    Args:
        spec: the scene (see :func:`~corr_core.data.sim.sampling.sample_scene`).
        size: ``(W, H)`` of the images.
        hidden: camera -> object ids that camera does not see (not in its colour, ids or depth;
            the other cameras see them as usual): an object hidden from one view, the case a
            cross-view system must answer with "not visible there".
    """

    def __init__(self, spec: SceneSpec, size: tuple[int, int] = (320, 240),
                 hidden: dict[str, list[int]] | None = None) -> None:
        self.spec = spec
        self.hidden = {cam: [int(i) for i in ids] for cam, ids in (hidden or {}).items()}
        self.width, self.height = int(size[0]), int(size[1])
        xml, assets = build_mjcf(spec, (self.width, self.height))
        self.model = mujoco.MjModel.from_xml_string(xml, assets)
        self.data = mujoco.MjData(self.model)
        self.traj = plan_trajectories(spec)
        self.cameras = spec.cameras
        self._cam_ids = {c: self._id(mujoco.mjtObj.mjOBJ_CAMERA, c) for c in self.cameras}
        self._mocap = {
            name: int(self.model.body_mocapid[self._id(mujoco.mjtObj.mjOBJ_BODY, name)])
            for name in ["ego_rig", "gripper", "finger_l", "finger_r", "shoulder", "upper_arm", "forearm"]
            + [f"obj{o.id}" for o in spec.objects]
        }
        self._arm_geoms = [self._id(mujoco.mjtObj.mjOBJ_GEOM, g) for g in ("upper_arm", "forearm")]
        # geom id -> instance id; the extra last entry is for "no geom" (background).
        body_to_id = np.zeros(self.model.nbody, dtype=np.uint8)
        for obj in spec.objects:
            body_to_id[self._id(mujoco.mjtObj.mjOBJ_BODY, f"obj{obj.id}")] = obj.id
        self._geom_to_id = np.concatenate([body_to_id[self.model.geom_bodyid], [0]]).astype(np.uint8)
        unknown = sorted({i for ids in self.hidden.values() for i in ids} - {o.id for o in spec.objects})
        if unknown or set(self.hidden) - set(self.cameras):
            raise ConfigError(f"hidden objects {self.hidden}: unknown ids {unknown} or cameras not in {self.cameras}")
        self._far = float(self.model.vis.map.zfar * self.model.stat.extent)
        self._renderer = None
        try:
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        except (mujoco.FatalError, RuntimeError, ImportError) as exc:
            raise ConfigError(
                f"cannot open a MuJoCo renderer (MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r}): {exc}. On a headless "
                "machine set MUJOCO_GL=osmesa (or egl) before anything imports mujoco"
            ) from exc

    def _id(self, kind: mujoco.mjtObj, name: str) -> int:
        i = mujoco.mj_name2id(self.model, kind, name)
        if i < 0:
            raise RuntimeError(f"generated scene lacks {name!r}")  # a bug in build_mjcf, not user input
        return int(i)

    def close(self) -> None:
        """Frees the renderer's GL context (safe to call twice)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def num_frames(self) -> int:
        return self.spec.num_frames

    def fovy(self, cam: str) -> float:
        """Vertical field of view of camera ``cam`` (degrees)."""
        return float(self.model.cam_fovy[self._cam_ids[cam]])

    def intrinsics(self, cam: str) -> np.ndarray:
        """``K`` (3x3 float64) of camera ``cam``."""
        return intrinsics_from_fovy(self.fovy(cam), self.width, self.height)

    def extrinsics(self, cam: str) -> np.ndarray:
        """Camera-to-world 4x4 (float64) of ``cam``'s optical frame at the current frame."""
        cid = self._cam_ids[cam]
        t = np.eye(4)
        t[:3, :3] = self.data.cam_xmat[cid].reshape(3, 3) @ _OPTICAL_FROM_MUJOCO
        t[:3, 3] = self.data.cam_xpos[cid]
        return t

    def set_frame(self, i: int) -> None:
        """Poses every moving body for frame ``i`` and updates the kinematics."""
        tr, d = self.traj, self.data
        for k, obj in enumerate(self.spec.objects):
            m = self._mocap[f"obj{obj.id}"]
            d.mocap_pos[m], d.mocap_quat[m] = tr.obj_pos[i, k], tr.obj_quat[i, k]
        palm = tr.gripper_pos[i]
        m = self._mocap["gripper"]
        d.mocap_pos[m], d.mocap_quat[m] = palm, quat_yaw(tr.gripper_yaw[i])
        for name, (p, q) in zip(
            ("finger_l", "finger_r"), finger_poses(palm, tr.gripper_yaw[i], tr.gripper_open[i]), strict=True
        ):
            d.mocap_pos[self._mocap[name]], d.mocap_quat[self._mocap[name]] = p, q
        shoulder = tr.shoulder_pos[i]
        d.mocap_pos[self._mocap["shoulder"]] = shoulder
        for name, geom, (p, q, half) in zip(
            ("upper_arm", "forearm"), self._arm_geoms, arm_links(shoulder, palm), strict=True
        ):
            d.mocap_pos[self._mocap[name]], d.mocap_quat[self._mocap[name]] = p, q
            self.model.geom_size[geom, 1] = half
        m = self._mocap["ego_rig"]
        d.mocap_pos[m], d.mocap_quat[m] = tr.ego_pos[i], tr.ego_quat[i]
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_camlight(self.model, d)

    def render_camera(self, cam: str) -> dict[str, np.ndarray]:
        """``rgb`` (H, W, 3) uint8, ``labels`` (H, W) uint8 instance ids, ``depth`` (H, W) float32
        metres (0 where nothing was hit) of ``cam`` at the current frame."""
        if self._renderer is None:
            raise RuntimeError("SceneRenderer is closed")
        r = self._renderer
        hidden = np.nonzero(np.isin(self._geom_to_id[:-1], self.hidden.get(cam, [])))[0]
        if len(hidden):  # a geom group no scene option shows, for this camera only
            self.model.geom_group[hidden] = _HIDDEN_GROUP
            r.update_scene(self.data, camera=cam)
            self.model.geom_group[hidden] = 0
        else:
            r.update_scene(self.data, camera=cam)
        rgb = r.render()
        r.enable_segmentation_rendering()
        seg = r.render()
        r.enable_depth_rendering()
        depth = r.render()
        r.disable_depth_rendering()
        geom = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
        labels = self._geom_to_id[geom]  # -1 picks the trailing background entry
        depth = np.where(depth < 0.999 * self._far, depth, 0.0).astype(np.float32)
        return {"rgb": rgb, "labels": labels, "depth": depth}

    def render_frame(self, i: int) -> dict[str, Any]:
        """Frame ``i`` of every camera: ``{"index", "cameras": {cam: {"rgb", "labels", "depth",
        "K", "T_world_cam"}}}`` (see :meth:`render_camera`)."""
        self.set_frame(i)
        cams = {}
        for cam in self.cameras:
            out = self.render_camera(cam)
            out["K"] = self.intrinsics(cam)
            out["T_world_cam"] = self.extrinsics(cam)
            cams[cam] = out
        return {"index": i, "cameras": cams}

    def frames(self) -> Iterator[dict[str, Any]]:
        """Yields :meth:`render_frame` for every frame in order."""
        for i in range(self.num_frames):
            yield self.render_frame(i)
