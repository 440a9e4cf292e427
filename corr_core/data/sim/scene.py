"""A procedurally drawn MuJoCo tabletop: what is in a scene (the specs) and its fixed geometry.

:class:`SceneSpec` and its parts describe everything random about an episode;
:func:`~corr_core.data.sim.sampling.sample_scene` draws one from a seed (objects and their
look-alikes, textures, materials, lights, cameras, the robot's scripted manipulation events);
:func:`~corr_core.data.sim.mjcf.build_mjcf` writes it as MJCF text plus in-memory PNG assets.
Trajectories are in :mod:`corr_core.data.sim.motion`, rendering in :mod:`corr_core.data.sim.render`.

World frame: z up, metres; the table top is the plane ``z = TABLE_TOP`` centred on the origin;
the robot (whose head carries the egocentric camera) stands on the ``-y`` side.

Object ``i`` (0-based, ``SceneSpec.objects[i]``) has instance id ``i + 1``; the robot, table,
floor and walls are background (id 0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SHAPES = ("box", "cylinder", "sphere", "capsule")
TABLE_TOP = 0.75  # z of the table surface (m)
TABLE_HALF = (0.50, 0.38)  # half extents of the table top (m)
USABLE_HALF = (0.42, 0.30)  # object footprints stay inside this rectangle (m)
ROOM_HALF = 2.5  # walls at |x|, |y| = ROOM_HALF (m)
FPS = 10.0  # frame rate of the scripted motion (frames per second)
CLEARANCE = 0.03  # minimum gap between object footprints (m)

# Gripper geometry (gripper frame = palm centre, z up, fingers open along x).
PALM_HALF = (0.08, 0.02, 0.012)
FINGER_HALF = (0.008, 0.015, 0.035)
FINGER_Z = -(PALM_HALF[2] + FINGER_HALF[2])  # finger centre below the palm centre
ARM_RADIUS = 0.022


@dataclass
class ObjectSpec:
    """One object on the table.

    Attributes:
        id: instance id (``index + 1``), the same in every camera and frame.
        shape: one of :data:`SHAPES`.
        size: MuJoCo geom size (box: half extents; cylinder: radius, half height; sphere: radius;
            capsule: radius, half length of the segment).
        lying: capsules only: lying on the table with the axis along the object's x axis.
        material: name of the MuJoCo material (shared by look-alikes).
        texture: description of the texture (``procedural:<kind>`` or ``image:<name>``).
        lookalike_of: id of the object this one copies (shape, size, material), else None.
        xy: start position on the table.
        yaw: start heading (rad).
    """

    id: int
    shape: str
    size: list[float]
    lying: bool
    material: str
    texture: str
    lookalike_of: int | None
    xy: list[float]
    yaw: float

    def half_height(self) -> float:
        """Height of the centre above the table when resting (m)."""
        if self.shape == "box":
            return self.size[2]
        if self.shape == "cylinder":
            return self.size[1]
        if self.shape == "capsule":
            return self.size[0] if self.lying else self.size[0] + self.size[1]
        return self.size[0]

    def radius(self) -> float:
        """Radius of a circle around the footprint (m)."""
        if self.shape == "box":
            return math.hypot(self.size[0], self.size[1])
        if self.shape == "capsule" and self.lying:
            return self.size[0] + self.size[1]
        return self.size[0]

    def extent(self, direction: np.ndarray, yaw: float) -> float:
        """Support distance of the footprint along a unit world ``direction`` (2,) at ``yaw``."""
        c, s = math.cos(yaw), math.sin(yaw)
        dx = abs(c * direction[0] + s * direction[1])  # component along the object's x axis
        dy = abs(-s * direction[0] + c * direction[1])
        if self.shape == "box":
            return dx * self.size[0] + dy * self.size[1]
        if self.shape == "capsule" and self.lying:
            return dx * self.size[1] + self.size[0]
        return self.size[0]

    def grasp_half_width(self) -> float:
        """Half width between the fingers of a top-down grasp across the object's y axis (m)."""
        if self.shape == "box":
            return self.size[1]
        return self.size[0]


@dataclass
class EventSpec:
    """One scripted manipulation: the robot pushes or picks and places one object.

    Times are in frames (continuous); the object moves in the middle of ``[start, end]``.
    """

    kind: str  # "push" or "pick_place"
    object_id: int
    start: float
    end: float
    from_xy: list[float]
    to_xy: list[float]
    yaw_from: float
    yaw_to: float
    lift: float  # pick-and-place: height the object is lifted (m)


@dataclass
class MaterialSpec:
    """A MuJoCo material with its texture (``texture`` names an entry of ``SceneSpec.textures``)."""

    name: str
    texture: str
    description: str
    kind: str  # MuJoCo texture type: "cube" for objects, "2d" for surfaces
    rgba: list[float]
    specular: float
    shininess: float
    texrepeat: list[float] = field(default_factory=lambda: [1.0, 1.0])


@dataclass
class LightSpec:
    """A light: position, direction, colours and whether it casts shadows."""

    pos: list[float]
    dir: list[float]
    diffuse: list[float]
    specular: list[float]
    castshadow: bool


@dataclass
class ExoCameraSpec:
    """A static exocentric camera looking from ``pos`` at ``target`` with vertical FOV ``fovy``."""

    name: str
    pos: list[float]
    target: list[float]
    fovy: float


@dataclass
class EgoPathSpec:
    """Parameters of the head-like egocentric camera path (see :func:`motion.ego_poses`)."""

    fovy: float
    radius: float
    height: float
    azimuth: float
    sines: dict[str, list[float]]  # name -> [amplitude, frequency (Hz), phase]
    jitter_pos: float  # std of the smoothed position jitter (m)
    jitter_target: float  # std of the smoothed look-at jitter (m)
    roll: float  # constant roll (rad)
    jitter_roll: float  # std of the smoothed roll jitter (rad)
    follow: float  # how much the gaze follows the manipulated object (0..1)


@dataclass
class SceneSpec:
    """Everything random about an episode, drawn from its seed by :func:`sample_scene`."""

    seed: int
    num_frames: int
    objects: list[ObjectSpec]
    events: list[EventSpec]
    materials: dict[str, MaterialSpec]
    lights: list[LightSpec]
    ambient: list[float]
    headlight: list[float]
    shadows: bool
    shoulder: list[float]  # shoulder offset from the ego camera: [right, back, down] (m)
    ego: EgoPathSpec
    exo: list[ExoCameraSpec]
    textures: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    @property
    def cameras(self) -> list[str]:
        """Camera names: ``ego`` then ``exo1``, ``exo2``, ..."""
        return ["ego"] + [c.name for c in self.exo]

    def object(self, oid: int) -> ObjectSpec:
        """The object with instance id ``oid``."""
        return self.objects[oid - 1]

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable description (without the texture pixels)."""
        d = asdict(self)
        d.pop("textures")
        d["cameras"] = self.cameras
        return d


def __getattr__(name: str) -> Any:
    """Old import paths: ``sample_scene``/``default_num_lookalikes`` live in
    :mod:`corr_core.data.sim.sampling`, ``build_mjcf`` in :mod:`corr_core.data.sim.mjcf`."""
    if name in ("sample_scene", "default_num_lookalikes"):
        from corr_core.data.sim import sampling

        return getattr(sampling, name)
    if name == "build_mjcf":
        from corr_core.data.sim.mjcf import build_mjcf

        return build_mjcf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
