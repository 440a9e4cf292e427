"""Draws a :class:`~corr_core.data.sim.scene.SceneSpec` from an episode seed.

:func:`sample_scene` draws everything random about an episode (objects and their look-alikes,
textures, materials, lights, cameras, the robot's scripted manipulation events) from independent
random streams of the seed, so the same seed always gives the same scene.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from corr_core.data.sim.scene import (
    CLEARANCE,
    FINGER_HALF,
    SHAPES,
    TABLE_TOP,
    USABLE_HALF,
    EgoPathSpec,
    EventSpec,
    ExoCameraSpec,
    LightSpec,
    MaterialSpec,
    ObjectSpec,
    SceneSpec,
)
from corr_core.data.sim.textures import random_object_texture, random_surface_texture


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _sample_shape(rng: np.random.Generator) -> tuple[str, list[float], bool]:
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    if shape == "box":
        return shape, [_u(rng, 0.03, 0.06), _u(rng, 0.03, 0.06), _u(rng, 0.03, 0.06)], False
    if shape == "cylinder":
        return shape, [_u(rng, 0.03, 0.05), _u(rng, 0.035, 0.07)], False
    if shape == "capsule":
        return shape, [_u(rng, 0.025, 0.035), _u(rng, 0.035, 0.065)], bool(rng.random() < 0.6)
    return shape, [_u(rng, 0.035, 0.055)], False


def _inside(xy: np.ndarray, r: float) -> bool:
    return abs(xy[0]) <= USABLE_HALF[0] - r and abs(xy[1]) <= USABLE_HALF[1] - r


def _clear(xy: np.ndarray, r: float, others: list[tuple[np.ndarray, float]]) -> bool:
    return all(np.linalg.norm(xy - p) >= r + q + CLEARANCE for p, q in others)


def _segment_clear(a: np.ndarray, b: np.ndarray, r: float, others: list[tuple[np.ndarray, float]]) -> bool:
    ab = b - a
    length2 = float(ab @ ab)
    for p, q in others:
        t = 0.0 if length2 == 0 else float(np.clip((p - a) @ ab / length2, 0.0, 1.0))
        if np.linalg.norm(a + t * ab - p) < r + q + CLEARANCE:
            return False
    return True


def _place(rng: np.random.Generator, r: float, others: list[tuple[np.ndarray, float]]) -> np.ndarray | None:
    for _ in range(300):
        xy = np.array(
            [
                _u(rng, -USABLE_HALF[0] + r, USABLE_HALF[0] - r),
                _u(rng, -USABLE_HALF[1] + r, USABLE_HALF[1] - r),
            ]
        )
        if _clear(xy, r, others):
            return xy
    return None


def _sample_objects(
    rng: np.random.Generator,
    num_objects: int,
    num_lookalikes: int,
    textures: dict[str, np.ndarray],
    materials: dict[str, MaterialSpec],
) -> list[ObjectSpec]:
    """Originals with their own appearance, then look-alikes copying distinct originals; the order
    (hence the ids) is shuffled so look-alikes are not always the last ids."""
    num_orig = num_objects - num_lookalikes
    drafts: list[dict[str, Any]] = []
    for k in range(num_orig):
        shape, size, lying = _sample_shape(rng)
        desc, img = random_object_texture(rng)
        tex, mat = f"tex_obj{k}", f"mat_obj{k}"
        textures[tex] = img
        tint = [_u(rng, 0.85, 1.0) for _ in range(3)] + [1.0]
        materials[mat] = MaterialSpec(mat, tex, desc, "cube", tint, _u(rng, 0.0, 0.6), _u(rng, 0.1, 0.8))
        drafts.append(
            {"shape": shape, "size": size, "lying": lying, "material": mat, "texture": desc, "src": None}
        )
    for src in rng.permutation(num_orig)[:num_lookalikes]:
        drafts.append({**drafts[int(src)], "src": int(src)})
    order = [int(i) for i in rng.permutation(num_objects)]  # order[new index] = draft index
    new_id = {draft: pos + 1 for pos, draft in enumerate(order)}
    return [
        ObjectSpec(
            pos + 1,
            d["shape"],
            list(d["size"]),
            d["lying"],
            d["material"],
            d["texture"],
            None if d["src"] is None else new_id[d["src"]],
            [0.0, 0.0],
            0.0,
        )
        for pos, d in ((pos, drafts[i]) for pos, i in enumerate(order))
    ]


def _place_objects(rng: np.random.Generator, objects: list[ObjectSpec]) -> None:
    """Random non-overlapping start positions and headings (in place)."""
    placed: list[tuple[np.ndarray, float]] = []
    for obj in objects:
        r = obj.radius()
        xy = _place(rng, r, placed)
        if xy is None:  # table too full for the clearance: accept an overlap rather than fail
            xy = np.array(
                [
                    _u(rng, -USABLE_HALF[0] + r, USABLE_HALF[0] - r),
                    _u(rng, -USABLE_HALF[1] + r, USABLE_HALF[1] - r),
                ]
            )
        obj.xy = [float(xy[0]), float(xy[1])]
        obj.yaw = _u(rng, -math.pi, math.pi)
        placed.append((xy, r))


def _plan_target(
    rng: np.random.Generator,
    kind: str,
    obj: ObjectSpec,
    xy: np.ndarray,
    yaw: float,
    others: list[tuple[np.ndarray, float]],
) -> np.ndarray | None:
    """A free goal for ``obj`` at ``xy``: pushes need a free straight path and room for the gripper
    behind the object; pick-and-place only a free goal (the object travels in the air)."""
    r = obj.radius()
    for _ in range(80):
        dist = _u(rng, 0.10, 0.22) if kind == "push" else _u(rng, 0.15, 0.40)
        ang = _u(rng, -math.pi, math.pi)
        d = np.array([math.cos(ang), math.sin(ang)])
        goal = xy + dist * d
        if not _inside(goal, r) or not _clear(goal, r, others):
            continue
        if kind == "push":
            pusher = xy - d * (obj.extent(d, yaw) + FINGER_HALF[1] + 0.01)
            if not _segment_clear(xy, goal, r, others) or not _clear(pusher, 0.03, others):
                continue
        return goal
    return None


def _sample_events(rng: np.random.Generator, objects: list[ObjectSpec], num_frames: int) -> list[EventSpec]:
    """Sequential events (the robot has one arm), about one per 1.6 s, each in its own time slot;
    a member of a look-alike pair moves in about half of the episodes (when there is a pair)."""
    n_events = int(min(len(objects), max(1, round(num_frames / 16))))
    if num_frames < 3:
        return []
    order = [int(i) for i in rng.permutation(len(objects))]
    twins = [o.id - 1 for o in objects if o.lookalike_of is not None]
    twins += [o.lookalike_of - 1 for o in objects if o.lookalike_of is not None]
    if twins and rng.random() < 0.5:
        pick = twins[int(rng.integers(len(twins)))]
        order.remove(pick)
        order.insert(int(rng.integers(n_events)), pick)
    kinds = ["push" if rng.random() < 0.5 else "pick_place" for _ in range(n_events)]
    if n_events >= 2 and len(set(kinds)) == 1:
        kinds[int(rng.integers(n_events))] = "pick_place" if kinds[0] == "push" else "push"
    pos = {o.id: np.array(o.xy) for o in objects}
    yaw = {o.id: o.yaw for o in objects}
    slot = (num_frames - 1) / n_events
    events: list[EventSpec] = []
    candidates = iter(order)
    for k in range(n_events):
        t0 = k * slot + _u(rng, 0.0, 0.08) * slot
        t1 = (k + 1) * slot - _u(rng, 0.0, 0.08) * slot
        for idx in candidates:
            obj = objects[idx]
            others = [(pos[o.id], o.radius()) for o in objects if o.id != obj.id]
            kind = kinds[k]
            goal = _plan_target(rng, kind, obj, pos[obj.id], yaw[obj.id], others)
            if goal is None and kind == "push":
                kind = "pick_place"
                goal = _plan_target(rng, kind, obj, pos[obj.id], yaw[obj.id], others)
            if goal is None:
                continue
            turn = _u(rng, -0.35, 0.35) if kind == "push" else _u(rng, -1.2, 1.2)
            # carried objects clear every other object on the table
            tallest = max((2.0 * o.half_height() for o in objects if o.id != obj.id), default=0.0)
            lift = max(_u(rng, 0.08, 0.15), tallest + 0.03) if kind == "pick_place" else 0.0
            ev = EventSpec(
                kind,
                obj.id,
                float(t0),
                float(t1),
                [float(v) for v in pos[obj.id]],
                [float(v) for v in goal],
                yaw[obj.id],
                yaw[obj.id] + turn,
                lift,
            )
            if obj.shape == "sphere":  # spheres roll instead of turning
                ev.yaw_to = ev.yaw_from
            events.append(ev)
            pos[obj.id], yaw[obj.id] = goal, ev.yaw_to
            break
    return events


def _sample_lights(rng: np.random.Generator, shadows: bool) -> list[LightSpec]:
    lights = []
    for k in range(int(rng.integers(1, 4))):
        pos = np.array([_u(rng, -1.5, 1.5), _u(rng, -1.5, 1.5), TABLE_TOP + _u(rng, 1.2, 2.3)])
        target = np.array([_u(rng, -0.3, 0.3), _u(rng, -0.3, 0.3), TABLE_TOP])
        d = (target - pos) / np.linalg.norm(target - pos)
        level = _u(rng, 0.35, 0.8)
        diffuse = [level * _u(rng, 0.85, 1.15) for _ in range(3)]
        spec = _u(rng, 0.05, 0.3)
        lights.append(
            LightSpec([float(v) for v in pos], [float(v) for v in d], diffuse, [spec] * 3, shadows and k == 0)
        )
    return lights


def _sample_exo(rng: np.random.Generator, num_exo: int) -> list[ExoCameraSpec]:
    """Static cameras spread over the side of the table facing the robot (azimuth -10..190 deg)."""
    cams = []
    width = 200.0 / num_exo
    for k in range(num_exo):
        az = math.radians(-10.0 + k * width + _u(rng, 0.15, 0.85) * width)
        dist, height = _u(rng, 1.0, 1.3), _u(rng, 0.45, 0.85)
        pos = [dist * math.cos(az), dist * math.sin(az), TABLE_TOP + height]
        target = [_u(rng, -0.05, 0.05), _u(rng, -0.05, 0.05), TABLE_TOP]
        cams.append(ExoCameraSpec(f"exo{k + 1}", pos, target, _u(rng, 45.0, 55.0)))
    return cams


def _sample_ego(rng: np.random.Generator) -> EgoPathSpec:
    def sine(amp: tuple[float, float], freq: tuple[float, float]) -> list[float]:
        return [_u(rng, *amp), _u(rng, *freq), _u(rng, 0.0, 2 * math.pi)]

    return EgoPathSpec(
        fovy=_u(rng, 55.0, 65.0),
        radius=_u(rng, 0.70, 0.85),
        height=_u(rng, 0.50, 0.65),
        azimuth=-math.pi / 2 + _u(rng, -0.25, 0.25),
        sines={
            "azimuth_slow": sine((0.25, 0.45), (0.05, 0.10)),
            "azimuth_fast": sine((0.03, 0.08), (0.2, 0.4)),
            "height": sine((0.01, 0.03), (0.3, 0.6)),
            "radius": sine((0.02, 0.05), (0.08, 0.15)),
            "gaze_x": sine((0.05, 0.12), (0.05, 0.12)),
            "gaze_y": sine((0.03, 0.07), (0.05, 0.12)),
        },
        jitter_pos=0.003,
        jitter_target=0.008,
        roll=_u(rng, -0.03, 0.03),
        jitter_roll=0.01,
        follow=_u(rng, 0.3, 0.6),
    )


def default_num_lookalikes(num_objects: int) -> int:
    """One look-alike per four objects (at least one from three objects up)."""
    return 0 if num_objects < 3 else max(1, num_objects // 4)


def sample_scene(
    seed: int, num_objects: int = 5, num_exo: int = 1, num_frames: int = 40, num_lookalikes: int | None = None
) -> SceneSpec:
    """Draws an episode's scene from ``seed``.

    Independent random streams drive the appearance, the layout and events, the lights and the
    cameras, so e.g. the same seed with more frames gives the same scene with a longer script.

    Args:
        seed: episode seed (any non-negative int).
        num_objects: objects on the table (>= 1), look-alikes included.
        num_exo: static exocentric cameras (>= 1).
        num_frames: episode length (the event script depends on it).
        num_lookalikes: objects that copy another one; default :func:`default_num_lookalikes`.

    Raises:
        ValueError: for counts out of range.
    """
    if num_objects < 1 or num_exo < 1 or num_frames < 1:
        raise ValueError(
            f"need >= 1 objects, exo cameras and frames, got {num_objects}, {num_exo}, {num_frames}"
        )
    n_look = default_num_lookalikes(num_objects) if num_lookalikes is None else int(num_lookalikes)
    if not 0 <= n_look <= num_objects // 2:
        raise ValueError(
            f"num_lookalikes must be in 0..{num_objects // 2} for {num_objects} objects, got {n_look}"
        )
    appearance, layout, lighting, cameras = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    textures: dict[str, np.ndarray] = {}
    materials: dict[str, MaterialSpec] = {}
    objects = _sample_objects(appearance, num_objects, n_look, textures, materials)
    for surface, repeat in (("table", (1.0, 2.0)), ("floor", (3.0, 8.0)), ("wall", (2.0, 5.0))):
        desc, img = random_surface_texture(appearance)
        textures[f"tex_{surface}"] = img
        rep = _u(appearance, *repeat)
        materials[f"mat_{surface}"] = MaterialSpec(
            f"mat_{surface}",
            f"tex_{surface}",
            desc,
            "2d",
            [1.0, 1.0, 1.0, 1.0],
            _u(appearance, 0.0, 0.3),
            _u(appearance, 0.1, 0.5),
            [rep, rep],
        )
    _place_objects(layout, objects)
    events = _sample_events(layout, objects, num_frames)
    shadows = bool(lighting.random() < 0.4)  # shadows double the colour pass's cost on OSMesa
    lights = _sample_lights(lighting, shadows)
    amb = _u(lighting, 0.15, 0.35)
    ambient = [amb * _u(lighting, 0.9, 1.1) for _ in range(3)]
    headlight = [_u(lighting, 0.05, 0.25)] * 3
    shoulder = [
        _u(layout, 0.17, 0.25) * (1.0 if layout.random() < 0.5 else -1.0),
        0.06,
        _u(layout, 0.26, 0.32),
    ]
    return SceneSpec(
        seed,
        num_frames,
        objects,
        events,
        materials,
        lights,
        ambient,
        headlight,
        shadows,
        shoulder,
        _sample_ego(cameras),
        _sample_exo(cameras, num_exo),
        textures,
    )
