"""A procedurally generated MuJoCo tabletop with an egocentric and exocentric cameras.

Everything is drawn from one ``numpy`` generator seeded by the episode seed, and objects move
kinematically (mocap bodies set every frame), so an episode is exactly reproducible.

Object ``i`` gets instance id ``i + 1`` in every camera and every frame; 0 is everything else.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import mujoco
import numpy as np

from corr_core.data.sim.textures import png_bytes, procedural, random_texture

SHAPES = ("box", "cylinder", "sphere", "capsule")
TABLE_TOP = 0.75  # z of the table surface (m)
TABLE_HALF = (0.45, 0.32)  # half extents of the usable table top (m)


@dataclass
class ObjectSpec:
    """One object: shape, size, texture and scripted motion."""

    id: int
    shape: str
    size: list[float]  # MuJoCo geom size
    texture: str  # description of the texture
    lookalike_of: int | None  # id of the object this one copies (shape, size, texture)
    start: list[float]  # x, y on the table
    motion: str  # "static", "push", "pick_place"
    goal: list[float]  # x, y where the motion ends
    t0: float  # motion start, fraction of the episode
    t1: float  # motion end
    yaw0: float
    yaw1: float

    def half_height(self) -> float:
        if self.shape == "box":
            return self.size[2]
        if self.shape == "cylinder":
            return self.size[1]
        if self.shape == "capsule":
            return self.size[0] + self.size[1]
        return self.size[0]

    def footprint(self) -> float:
        return max(self.size[0], self.size[1] if self.shape == "box" else self.size[0])


@dataclass
class SceneSpec:
    """Everything random about an episode, drawn from its seed."""

    seed: int
    objects: list[ObjectSpec]
    lights: list[dict[str, list[float]]]
    ambient: list[float]
    sky: list[float]
    textures: dict[str, np.ndarray] = field(repr=False)
    ego_path: dict[str, float]
    exo_poses: list[dict[str, list[float]]]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("textures")
        return d


def _sample_size(shape: str, rng: np.random.Generator) -> list[float]:
    if shape == "box":
        return [float(rng.uniform(0.04, 0.08)), float(rng.uniform(0.04, 0.08)), float(rng.uniform(0.04, 0.08))]
    if shape == "cylinder":
        return [float(rng.uniform(0.04, 0.07)), float(rng.uniform(0.04, 0.08))]
    if shape == "capsule":
        return [float(rng.uniform(0.035, 0.05)), float(rng.uniform(0.025, 0.05))]
    return [float(rng.uniform(0.04, 0.07))]


def _free_spot(rng: np.random.Generator, taken: list[tuple[float, float, float]], r: float) -> list[float]:
    for _ in range(200):
        x = float(rng.uniform(-TABLE_HALF[0] + r, TABLE_HALF[0] - r))
        y = float(rng.uniform(-TABLE_HALF[1] + r, TABLE_HALF[1] - r))
        if all(math.hypot(x - a, y - b) > r + rb + 0.03 for a, b, rb in taken):
            return [x, y]
    return [float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.2, 0.2))]


def sample_scene(seed: int, num_objects: int = 5, num_exo: int = 1) -> SceneSpec:
    """Draws a scene: objects (with at least one look-alike pair when ``num_objects >= 3``),
    motions (at least one push and one pick-and-place when there are objects to move), textures,
    lights and camera paths."""
    if num_objects < 1:
        raise ValueError(f"num_objects must be >= 1, got {num_objects}")
    rng = np.random.default_rng(seed)
    textures: dict[str, np.ndarray] = {}
    objects: list[ObjectSpec] = []
    taken: list[tuple[float, float, float]] = []
    n_look = 1 if num_objects >= 3 else 0
    for i in range(num_objects):
        oid = i + 1
        if n_look and i == num_objects - 1:
            src = objects[0]  # the look-alike: same shape, size and texture as object 1, elsewhere
            shape, size, tex_name, look = src.shape, list(src.size), f"tex{src.id}", src.id
            texture = src.texture
        else:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            size = _sample_size(shape, rng)
            texture, img = random_texture(rng)
            tex_name, look = f"tex{oid}", None
            textures[tex_name] = img
        obj = ObjectSpec(oid, shape, size, texture, look, [0, 0], "static", [0, 0], 0.0, 1.0, 0.0, 0.0)
        obj.start = _free_spot(rng, taken, obj.footprint())
        taken.append((*obj.start, obj.footprint()))
        obj.yaw0 = float(rng.uniform(-math.pi, math.pi))
        objects.append(obj)
    # Motions: object order shuffled; first mover pushes, second does pick-and-place, the
    # look-alike moves in about half of the episodes.
    order = list(rng.permutation(num_objects))
    movers = order[: max(1, min(num_objects, int(rng.integers(2, 4))))]
    if n_look and rng.random() < 0.5 and (num_objects - 1) not in movers:
        movers[-1] = num_objects - 1
    for k, idx in enumerate(movers):
        obj = objects[idx]
        obj.motion = "push" if k % 2 == 0 else "pick_place"
        dist = rng.uniform(0.12, 0.25) if obj.motion == "push" else rng.uniform(0.2, 0.4)
        ang = rng.uniform(-math.pi, math.pi)
        gx = float(np.clip(obj.start[0] + dist * math.cos(ang), -TABLE_HALF[0] + 0.06, TABLE_HALF[0] - 0.06))
        gy = float(np.clip(obj.start[1] + dist * math.sin(ang), -TABLE_HALF[1] + 0.06, TABLE_HALF[1] - 0.06))
        obj.goal = [gx, gy]
        obj.t0 = float(rng.uniform(0.05, 0.4))
        obj.t1 = float(min(obj.t0 + rng.uniform(0.3, 0.5), 0.95))
        obj.yaw1 = obj.yaw0 + float(rng.uniform(-1.2, 1.2))
    for obj in objects:
        if obj.motion == "static":
            obj.goal, obj.yaw1 = list(obj.start), obj.yaw0
    textures["table"] = procedural(("noise", "checker", "stripes", "gradient")[int(rng.integers(4))], rng)
    textures["floor"] = procedural("checker", rng)
    lights = []
    for _ in range(int(rng.integers(1, 3))):
        lights.append({"pos": [float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-1.5, 1.5)),
                               float(rng.uniform(2.0, 3.5))],
                       "diffuse": [float(rng.uniform(0.4, 0.9))] * 3})
    ambient = [float(rng.uniform(0.15, 0.4))] * 3
    sky = [float(v) for v in rng.uniform(0.3, 0.8, 3)]
    ego = {"radius": float(rng.uniform(0.6, 0.75)), "height": float(rng.uniform(0.4, 0.55)),
           "az0": float(rng.uniform(-2.2, -0.9)), "sweep": float(rng.uniform(0.5, 1.0)) * (1 if rng.random() < 0.5 else -1),
           "bob": float(rng.uniform(0.01, 0.03)), "jitter": 0.01, "phase": float(rng.uniform(0, 2 * math.pi))}
    exo = []
    for k in range(num_exo):
        az = float(rng.uniform(0.3, 1.2) + k * 2.0)
        r, hgt = float(rng.uniform(0.75, 0.95)), float(rng.uniform(0.45, 0.65))
        exo.append({"pos": [r * math.cos(az), r * math.sin(az), TABLE_TOP + hgt],
                    "target": [float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05)), TABLE_TOP]})
    return SceneSpec(seed, objects, lights, ambient, sky, textures, ego, exo)


def _geom_xml(obj: ObjectSpec, material: str) -> str:
    size = " ".join(f"{s:.4f}" for s in obj.size)
    return f'<geom name="obj{obj.id}" type="{obj.shape}" size="{size}" material="{material}"/>'


def build_mjcf(spec: SceneSpec, num_exo: int) -> tuple[str, dict[str, bytes]]:
    """MJCF text and its in-memory texture assets."""
    assets = {f"{name}.png": png_bytes(img) for name, img in spec.textures.items()}
    tex = "\n".join(
        f'<texture name="{n}" type="2d" file="{n}.png"/>'
        f'<material name="m_{n}" texture="{n}" texuniform="{"true" if n in ("table", "floor") else "false"}" '
        f'texrepeat="{"4 4" if n in ("table", "floor") else "1 1"}"/>'
        for n in spec.textures
    )
    lights = "\n".join(
        f'<light pos="{" ".join(map(str, li["pos"]))}" dir="0 0 -1" diffuse="{" ".join(map(str, li["diffuse"]))}" castshadow="false"/>'
        for li in spec.lights
    )
    bodies = []
    for obj in spec.objects:
        mat = f"m_tex{obj.lookalike_of or obj.id}"
        bodies.append(f'<body name="b{obj.id}" mocap="true" pos="0 0 1">{_geom_xml(obj, mat)}</body>')
    cams = '<camera name="ego" pos="0 -1 1.5" fovy="58"/>' + "".join(
        f'<camera name="exo{k + 1}" pos="0 1 1.5" fovy="50"/>' for k in range(num_exo)
    )
    xml = f"""<mujoco model="corr_tabletop">
  <visual><headlight ambient="{' '.join(map(str, spec.ambient))}" diffuse="0.3 0.3 0.3" specular="0 0 0"/>
    <quality shadowsize="0"/><map znear="0.02" zfar="20"/></visual>
  <asset>{tex}<texture name="sky" type="skybox" builtin="gradient" rgb1="{' '.join(map(str, spec.sky))}" rgb2="0.05 0.05 0.08" width="64" height="64"/></asset>
  <worldbody>
    {lights}
    <geom name="floor" type="plane" size="4 4 0.1" material="m_floor"/>
    <geom name="table" type="box" pos="0 0 {TABLE_TOP - 0.02}" size="{TABLE_HALF[0] + 0.1} {TABLE_HALF[1] + 0.1} 0.02" material="m_table"/>
    <geom name="leg1" type="box" pos="0.45 0.3 0.365" size="0.03 0.03 0.365" rgba="0.3 0.25 0.2 1"/>
    <geom name="leg2" type="box" pos="-0.45 0.3 0.365" size="0.03 0.03 0.365" rgba="0.3 0.25 0.2 1"/>
    <geom name="leg3" type="box" pos="0.45 -0.3 0.365" size="0.03 0.03 0.365" rgba="0.3 0.25 0.2 1"/>
    <geom name="leg4" type="box" pos="-0.45 -0.3 0.365" size="0.03 0.03 0.365" rgba="0.3 0.25 0.2 1"/>
    {''.join(bodies)}
    {cams}
  </worldbody>
</mujoco>"""
    return xml, assets


def _smooth(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


def object_pose(obj: ObjectSpec, u: float) -> tuple[np.ndarray, float]:
    """Position (3,) and yaw of an object at episode fraction ``u`` in [0, 1]."""
    s = _smooth((u - obj.t0) / max(obj.t1 - obj.t0, 1e-6)) if obj.motion != "static" else 0.0
    x = obj.start[0] + s * (obj.goal[0] - obj.start[0])
    y = obj.start[1] + s * (obj.goal[1] - obj.start[1])
    z = TABLE_TOP + obj.half_height()
    if obj.motion == "pick_place":
        z += 0.15 * math.sin(math.pi * s)  # lifted, carried, put down
    return np.array([x, y, z]), obj.yaw0 + s * (obj.yaw1 - obj.yaw0)


def look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MuJoCo camera quaternion looking from ``pos`` at ``target`` (camera -z forward, +y up)."""
    fwd = target - pos
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    mat = np.stack([right, up, -fwd], axis=1)  # columns: camera x, y, z in world
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, mat.reshape(-1))
    return q


def ego_pose(path: dict[str, float], u: float, rng_jitter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head-like egocentric camera at fraction ``u``: an arc around the table with a bob and jitter."""
    az = path["az0"] + path["sweep"] * u
    pos = np.array([path["radius"] * math.cos(az), path["radius"] * math.sin(az),
                    TABLE_TOP + path["height"] + path["bob"] * math.sin(2 * math.pi * 2 * u + path["phase"])])
    pos = pos + rng_jitter[:3] * path["jitter"]
    target = np.array([0.0, 0.0, TABLE_TOP]) + np.concatenate([rng_jitter[3:5] * 0.04, [0.0]])
    return pos, target


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class SceneRenderer:
    """Renders an episode of a :class:`SceneSpec`: RGB, instance ids, depth, camera parameters."""

    def __init__(self, spec: SceneSpec, size: tuple[int, int] = (320, 240), num_frames: int = 40) -> None:
        self.spec, self.width, self.height, self.num_frames = spec, int(size[0]), int(size[1]), int(num_frames)
        self.num_exo = len(spec.exo_poses)
        xml, assets = build_mjcf(spec, self.num_exo)
        self.model = mujoco.MjModel.from_xml_string(xml, assets)
        self.model.vis.global_.offwidth = max(self.width, 640)
        self.model.vis.global_.offheight = max(self.height, 480)
        self.data = mujoco.MjData(self.model)
        self.cameras = ["ego"] + [f"exo{k + 1}" for k in range(self.num_exo)]
        self.cam_ids = {c: mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, c) for c in self.cameras}
        # geom id -> instance id (0 for table, floor, legs)
        self.geom_to_id = np.zeros(self.model.ngeom + 1, dtype=np.uint16)
        for obj in spec.objects:
            self.geom_to_id[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"obj{obj.id}")] = obj.id
        self.jitter = np.random.default_rng(spec.seed + 7919).normal(size=(self.num_frames, 5))
        for k, pose in enumerate(spec.exo_poses):
            cid = self.cam_ids[f"exo{k + 1}"]
            self.model.cam_pos[cid] = pose["pos"]
            self.model.cam_quat[cid] = look_at_quat(np.array(pose["pos"]), np.array(pose["target"]))
        self.renderer = mujoco.Renderer(self.model, self.height, self.width)

    def close(self) -> None:
        self.renderer.close()

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def intrinsics(self, cam: str) -> np.ndarray:
        """Pinhole ``K`` (3x3) from the camera's vertical field of view."""
        fovy = math.radians(float(self.model.cam_fovy[self.cam_ids[cam]]))
        f = 0.5 * self.height / math.tan(fovy / 2)
        return np.array([[f, 0, self.width / 2], [0, f, self.height / 2], [0, 0, 1]], dtype=np.float64)

    def extrinsics(self, cam: str) -> np.ndarray:
        """Camera-to-world 4x4 of the optical frame (x right, y down, z forward), after mj_forward."""
        cid = self.cam_ids[cam]
        t = np.eye(4)
        t[:3, :3] = self.data.cam_xmat[cid].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        t[:3, 3] = self.data.cam_xpos[cid]
        return t

    def set_frame(self, i: int) -> None:
        u = i / max(self.num_frames - 1, 1)
        for k, obj in enumerate(self.spec.objects):
            pos, yaw = object_pose(obj, u)
            self.data.mocap_pos[k] = pos
            self.data.mocap_quat[k] = yaw_quat(yaw)
        pos, target = ego_pose(self.spec.ego_path, u, self.jitter[i])
        cid = self.cam_ids["ego"]
        self.model.cam_pos[cid] = pos
        self.model.cam_quat[cid] = look_at_quat(pos, target)
        mujoco.mj_forward(self.model, self.data)

    def render_camera(self, cam: str) -> dict[str, np.ndarray]:
        r = self.renderer
        r.update_scene(self.data, camera=cam)
        rgb = r.render().copy()
        r.enable_segmentation_rendering()
        seg = r.render()
        r.disable_segmentation_rendering()
        r.enable_depth_rendering()
        depth = r.render().astype(np.float32)
        r.disable_depth_rendering()
        geom = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
        labels = self.geom_to_id[np.where(geom >= 0, geom, self.model.ngeom)]
        return {"rgb": rgb, "labels": labels, "depth": depth}

    def frames(self) -> Iterator[dict[str, Any]]:
        """Yields per frame ``{"index", "cameras": {cam: {"rgb", "labels", "depth", "K", "T_world_cam"}}}``."""
        for i in range(self.num_frames):
            self.set_frame(i)
            cams = {}
            for cam in self.cameras:
                out = self.render_camera(cam)
                out["K"] = self.intrinsics(cam)
                out["T_world_cam"] = self.extrinsics(cam)
                cams[cam] = out
            yield {"index": i, "cameras": cams}
