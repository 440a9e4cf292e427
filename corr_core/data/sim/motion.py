"""Kinematic trajectories of an episode: objects, the robot's gripper and arm, the ego camera.

Nothing is simulated dynamically: poses are closed-form functions of the frame index and the
:class:`~corr_core.data.sim.scene.SceneSpec`, so an episode is exactly reproducible and cheap.

Quaternions are MuJoCo's ``(w, x, y, z)``. Each scripted event (push or pick-and-place) runs in
phases, as fractions of its duration: the gripper approaches above the object (0-0.25), descends
and closes (0.25-0.35), moves the object (0.35-0.85), releases and lifts away (0.85-1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.ndimage import gaussian_filter1d

from corr_core.data.sim.scene import (
    FINGER_HALF,
    FINGER_Z,
    FPS,
    PALM_HALF,
    TABLE_TOP,
    EventSpec,
    ObjectSpec,
    SceneSpec,
)

APPROACH, GRASP, RELEASE = 0.25, 0.35, 0.85  # phase boundaries (fractions of an event)
HOVER = 0.18  # height of the gripper above its contact pose while approaching/leaving (m)
PUSH_PALM_Z = TABLE_TOP + 0.003 - FINGER_Z + FINGER_HALF[2]  # fingertips 3 mm above the table
# Gripper pose before the first event, in the ego camera's first frame: down in the corner on the
# shoulder's side, like a robot's (or a person's) hand at rest, so the first ego frame shows the
# table: (horizontal, vertical) image position as fractions of tan(fovy / 2), and depth (m).
REST_VIEW = (0.75, -0.85, 0.42)
REST_MIN_HEIGHT = 0.15  # and at least this high above the table (m)


@dataclass
class Trajectories:
    """Per-frame poses for ``T`` frames and ``N`` objects.

    Attributes:
        obj_pos: ``(T, N, 3)`` object centres (m).
        obj_quat: ``(T, N, 4)`` object orientations.
        gripper_pos: ``(T, 3)`` palm centre.
        gripper_yaw: ``(T,)`` palm heading (rad); the fingers open along its x axis.
        gripper_open: ``(T,)`` distance of each finger's centre from the palm centre (m).
        ego_pos: ``(T, 3)`` ego camera position.
        ego_quat: ``(T, 4)`` ego camera orientation in MuJoCo's convention (looks along -z, y up).
        active: ``(T,)`` int, id of the object being manipulated (0 when none).
        shoulder_pos: ``(T, 3)`` the robot's shoulder (moves with the head).
    """

    obj_pos: np.ndarray
    obj_quat: np.ndarray
    gripper_pos: np.ndarray
    gripper_yaw: np.ndarray
    gripper_open: np.ndarray
    ego_pos: np.ndarray
    ego_quat: np.ndarray
    active: np.ndarray
    shoulder_pos: np.ndarray


# ----------------------------------------------------------------------------------------------
# small geometry helpers


def smooth(t: float) -> float:
    """Smoothstep of ``t`` clipped to [0, 1] (zero velocity at both ends)."""
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of two ``(4,)`` quaternions."""
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, np.asarray(a, float), np.asarray(b, float))
    return out


def quat_axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by ``angle`` (rad) about ``axis`` (3,)."""
    axis = np.asarray(axis, float)
    n = np.linalg.norm(axis)
    if n < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    half = 0.5 * angle
    return np.concatenate([[math.cos(half)], math.sin(half) * axis / n])


def quat_yaw(yaw: float) -> np.ndarray:
    """Rotation by ``yaw`` about the world z axis."""
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def quat_from_mat(mat: np.ndarray) -> np.ndarray:
    """Quaternion of a ``(3, 3)`` rotation matrix."""
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(mat, float).reshape(-1))
    return q


def quat_z_to(direction: np.ndarray) -> np.ndarray:
    """A rotation taking the z axis onto ``direction`` (3,)."""
    d = np.asarray(direction, float) / max(np.linalg.norm(direction), 1e-12)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, d)
    if np.linalg.norm(axis) < 1e-9:
        return np.array([1.0, 0.0, 0.0, 0.0]) if d[2] > 0 else np.array([0.0, 1.0, 0.0, 0.0])
    return quat_axis_angle(axis, math.acos(float(np.clip(d @ z, -1.0, 1.0))))


def look_at_quat(pos: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """MuJoCo camera orientation at ``pos`` looking at ``target`` (camera -z forward, +y up),
    rolled by ``roll`` (rad) about the viewing direction."""
    fwd = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    c, s = math.cos(roll), math.sin(roll)
    right, up = c * right + s * up, -s * right + c * up
    return quat_from_mat(np.stack([right, up, -fwd], axis=1))


def _wrap_half_turn(angle: float) -> float:
    """``angle`` modulo pi into (-pi/2, pi/2]: a two-finger gripper looks the same turned by pi."""
    return angle - math.pi * math.floor(angle / math.pi + 0.5)


# ----------------------------------------------------------------------------------------------
# objects


def _object_pose(
    obj: ObjectSpec, ev: EventSpec, u: float, q_start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pose of the event's object at event fraction ``u``."""
    v = min(max((u - GRASP) / (RELEASE - GRASP), 0.0), 1.0)
    a, b = np.array(ev.from_xy), np.array(ev.to_xy)
    z = TABLE_TOP + obj.half_height()
    if ev.kind == "push":
        s = smooth(v)
        xy = a + s * (b - a)
        if obj.shape == "sphere":  # rolls without slipping
            d = b - a
            q = quat_mul(quat_axis_angle([-d[1], d[0], 0.0], s * np.linalg.norm(d) / obj.size[0]), q_start)
        else:
            q = quat_mul(quat_yaw(s * (ev.yaw_to - ev.yaw_from)), q_start)
        return np.array([xy[0], xy[1], z]), q
    lift = smooth(v / 0.25) - smooth((v - 0.75) / 0.25)
    carry = smooth((v - 0.25) / 0.5)
    xy = a + carry * (b - a)
    q = quat_mul(quat_yaw(carry * (ev.yaw_to - ev.yaw_from)), q_start)
    return np.array([xy[0], xy[1], z + lift * ev.lift]), q


def _event_fraction(ev: EventSpec, t: float) -> float:
    return min(max((t - ev.start) / max(ev.end - ev.start, 1e-6), 0.0), 1.0)


def object_trajectories(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(T, N, 3)`` positions and ``(T, N, 4)`` orientations of every object in every frame."""
    n_t, n_o = spec.num_frames, len(spec.objects)
    pos = np.zeros((n_t, n_o, 3))
    quat = np.zeros((n_t, n_o, 4))
    start_pos = np.array([[o.xy[0], o.xy[1], TABLE_TOP + o.half_height()] for o in spec.objects])
    start_quat = np.array([quat_yaw(o.yaw) for o in spec.objects])
    for t in range(n_t):
        cur_p, cur_q = start_pos.copy(), start_quat.copy()
        for ev in spec.events:
            if t <= ev.start:
                break
            k = ev.object_id - 1
            cur_p[k], cur_q[k] = _object_pose(spec.objects[k], ev, _event_fraction(ev, t), cur_q[k])
        pos[t], quat[t] = cur_p, cur_q
    return pos, quat


# ----------------------------------------------------------------------------------------------
# gripper


def _contact(obj: ObjectSpec, ev: EventSpec, p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Gripper ``(palm position, yaw, finger opening)`` in contact with the object at pose (p, q)."""
    yaw = 2.0 * math.atan2(q[3], q[0]) if obj.shape != "sphere" else ev.yaw_from
    if ev.kind == "push":
        d = np.array(ev.to_xy) - np.array(ev.from_xy)
        d /= max(np.linalg.norm(d), 1e-9)
        xy = p[:2] - d * (obj.extent(d, yaw) + FINGER_HALF[1] + 0.004)
        return (
            np.array([xy[0], xy[1], PUSH_PALM_Z]),
            math.atan2(d[1], d[0]) + math.pi / 2,
            FINGER_HALF[0] + 0.001,
        )
    rest_z = TABLE_TOP + obj.half_height()
    above = max(obj.half_height() + PALM_HALF[2] + 0.004, PUSH_PALM_Z - rest_z)
    opening = obj.grasp_half_width() + FINGER_HALF[0] + 0.002
    return np.array([p[0], p[1], p[2] + above]), yaw + math.pi / 2, opening


def _open_wide(ev: EventSpec, closed: float) -> float:
    return closed if ev.kind == "push" else closed + 0.02


GripperPose = tuple[np.ndarray, float, float]  # palm position (3,), yaw, finger opening


def _gripper_in_event(
    obj: ObjectSpec, ev: EventSpec, start: GripperPose, q_start: np.ndarray, u: float
) -> GripperPose:
    """Gripper pose at fraction ``u`` of ``ev``, starting from ``start``; ``q_start`` is the
    object's orientation when the event begins."""
    p_start = np.array([ev.from_xy[0], ev.from_xy[1], TABLE_TOP + obj.half_height()])
    c_pos, c_yaw, c_open = _contact(obj, ev, p_start, q_start)
    wide = _open_wide(ev, c_open)
    p0, yaw0, open0 = start
    c_yaw = yaw0 + _wrap_half_turn(c_yaw - yaw0)
    hover = np.array([0.0, 0.0, HOVER])
    if u < APPROACH:
        s = smooth(u / APPROACH)
        return p0 + s * (c_pos + hover - p0), yaw0 + s * (c_yaw - yaw0), open0 + s * (wide - open0)
    if u < GRASP:
        s = smooth((u - APPROACH) / (GRASP - APPROACH))
        close = smooth(2.0 * s - 1.0)
        return c_pos + hover * (1.0 - s), c_yaw, wide + close * (c_open - wide)
    p_obj, q_obj = _object_pose(obj, ev, u, q_start)
    p_now, yaw_now, open_now = _contact(obj, ev, p_obj, q_obj)
    yaw_now = c_yaw + _wrap_half_turn(yaw_now - c_yaw)
    if u < RELEASE:
        return p_now, yaw_now, open_now
    s = smooth((u - RELEASE) / (1.0 - RELEASE))
    return p_now + hover * s, yaw_now, open_now + s * (wide - open_now)


def active_objects(spec: SceneSpec) -> np.ndarray:
    """``(T,)`` id of the object being manipulated in each frame (0 between events)."""
    active = np.zeros(spec.num_frames, dtype=np.int64)
    for t in range(spec.num_frames):
        for ev in spec.events:
            if t < ev.start:
                break
            if t <= ev.end:
                active[t] = ev.object_id
    return active


def rest_position(spec: SceneSpec, cam_pos: np.ndarray, cam_quat: np.ndarray) -> np.ndarray:
    """``(3,)`` palm position at rest (see :data:`REST_VIEW`) for the ego camera pose of frame 0."""
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, np.asarray(cam_quat, float))
    right, up, back = rot.reshape(3, 3).T  # camera axes in the world (columns)
    side = 1.0 if spec.shoulder[0] >= 0 else -1.0
    x, y, depth = REST_VIEW
    tan = math.tan(math.radians(spec.ego.fovy) / 2.0)
    ray = side * x * tan * right + y * tan * up - back
    pos = cam_pos + depth * ray / np.linalg.norm(ray)
    pos[2] = max(pos[2], TABLE_TOP + REST_MIN_HEIGHT)
    return pos


def gripper_trajectory(
    spec: SceneSpec, obj_quat: np.ndarray, rest_pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Palm position ``(T, 3)``, yaw ``(T,)`` and finger opening ``(T,)``. The gripper waits at
    ``rest_pos`` before the first event and hovers where it released the last object after each
    event."""
    n_t = spec.num_frames
    g_pos, g_yaw, g_open = np.zeros((n_t, 3)), np.zeros(n_t), np.zeros(n_t)
    rest: GripperPose = (np.array(rest_pos, float), 0.0, 0.04)
    plans = []  # (event, object, start pose, object orientation at the start)
    state = rest
    for ev in spec.events:
        k = ev.object_id - 1
        q_start = obj_quat[min(max(int(math.floor(ev.start)), 0), n_t - 1), k]
        plans.append((ev, spec.objects[k], state, q_start))
        state = _gripper_in_event(spec.objects[k], ev, state, q_start, 1.0)
    for t in range(n_t):
        pose = rest
        for ev, obj, start, q_start in plans:
            if t < ev.start:
                break
            pose = _gripper_in_event(obj, ev, start, q_start, _event_fraction(ev, t))
        g_pos[t], g_yaw[t], g_open[t] = pose
    return g_pos, g_yaw, g_open


def finger_poses(palm: np.ndarray, yaw: float, opening: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(position, quat)]`` of the left and right finger for a palm pose and opening."""
    axis = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    q = quat_yaw(yaw)
    base = palm + [0.0, 0.0, FINGER_Z]
    return [(base + opening * axis, q), (base - opening * axis, q)]


def arm_links(shoulder: np.ndarray, palm: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """``[(centre, quat, half length)]`` of the upper arm and forearm capsules (shoulder -> elbow ->
    wrist); the elbow sits above the midpoint so the arm arches over the table."""
    wrist = palm + [0.0, 0.0, PALM_HALF[2] + 0.05]
    elbow = 0.5 * (shoulder + wrist) + [0.0, 0.0, 0.08]
    links = []
    for a, b in ((shoulder, elbow), (elbow, wrist)):
        links.append((0.5 * (a + b), quat_z_to(b - a), 0.5 * float(np.linalg.norm(b - a))))
    return links


# ----------------------------------------------------------------------------------------------
# ego camera


def _smoothed_noise(rng: np.random.Generator, n: int, dims: int, sigma: float = 1.5) -> np.ndarray:
    """``(n, dims)`` temporally smoothed Gaussian noise with unit standard deviation per sample."""
    white = rng.normal(size=(n, dims))
    return gaussian_filter1d(white, sigma, axis=0, mode="nearest") * math.sqrt(
        2.0 * math.sqrt(math.pi) * sigma
    )


def ego_trajectory(spec: SceneSpec, obj_pos: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head-like ego camera: ``(T, 3)`` positions and ``(T, 4)`` MuJoCo camera quaternions.

    The head sways on an arc on the robot's side of the table (slow and fast azimuth sines, bob,
    radius changes), looks at a point wandering over the table that leans towards the object being
    manipulated, and shakes a little (smoothed position, gaze and roll jitter).
    """
    e = spec.ego
    n_t = spec.num_frames
    t = np.arange(n_t) / FPS

    def sine(name: str) -> np.ndarray:
        amp, freq, phase = e.sines[name]
        return amp * np.sin(2.0 * math.pi * freq * t + phase)

    az = e.azimuth + sine("azimuth_slow") + sine("azimuth_fast")
    radius = e.radius + sine("radius")
    pos = np.stack([radius * np.cos(az), radius * np.sin(az), TABLE_TOP + e.height + sine("height")], axis=1)
    gaze = np.stack([sine("gaze_x"), sine("gaze_y"), np.full(n_t, TABLE_TOP)], axis=1)
    weight = np.where(active > 0, e.follow, 0.0)
    focus = np.array([obj_pos[i, a - 1] if a > 0 else gaze[i] for i, a in enumerate(active)])
    target = (1.0 - weight[:, None]) * gaze + weight[:, None] * focus
    target = gaussian_filter1d(target, 2.0, axis=0, mode="nearest")
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x65676F]))
    pos = pos + e.jitter_pos * _smoothed_noise(rng, n_t, 3)
    target = target + e.jitter_target * _smoothed_noise(rng, n_t, 3)
    roll = e.roll + e.jitter_roll * _smoothed_noise(rng, n_t, 1)[:, 0]
    quat = np.stack([look_at_quat(pos[i], target[i], roll[i]) for i in range(n_t)])
    return pos, quat


def shoulder_trajectory(spec: SceneSpec, ego_pos: np.ndarray) -> np.ndarray:
    """``(T, 3)`` shoulder positions: below, behind and beside the head, in the head's horizontal
    frame facing the table centre (so the arm enters the ego view from below, like a human's)."""
    right_off, back, down = spec.shoulder
    fwd = -ego_pos[:, :2] / np.linalg.norm(ego_pos[:, :2], axis=1, keepdims=True)
    fwd3 = np.concatenate([fwd, np.zeros((len(fwd), 1))], axis=1)
    right = np.cross(fwd3, [0.0, 0.0, 1.0])
    return ego_pos + right_off * right - back * fwd3 - [0.0, 0.0, down]


def plan_trajectories(spec: SceneSpec) -> Trajectories:
    """All per-frame poses of an episode."""
    obj_pos, obj_quat = object_trajectories(spec)
    active = active_objects(spec)
    ego_pos, ego_quat = ego_trajectory(spec, obj_pos, active)
    rest = rest_position(spec, ego_pos[0], ego_quat[0])
    g_pos, g_yaw, g_open = gripper_trajectory(spec, obj_quat, rest)
    return Trajectories(
        obj_pos, obj_quat, g_pos, g_yaw, g_open, ego_pos, ego_quat, active, shoulder_trajectory(spec, ego_pos)
    )
