"""MJCF text (and in-memory PNG texture assets) of a :class:`~corr_core.data.sim.scene.SceneSpec`."""

from __future__ import annotations

from typing import Any

import numpy as np

from corr_core.data.sim.scene import (
    ARM_RADIUS,
    FINGER_HALF,
    PALM_HALF,
    ROOM_HALF,
    TABLE_HALF,
    TABLE_TOP,
    ObjectSpec,
    SceneSpec,
)
from corr_core.data.sim.textures import png_bytes


def _v(values: Any) -> str:
    return " ".join(f"{float(x):.6g}" for x in values)


def _xyaxes(pos: np.ndarray, target: np.ndarray) -> str:
    """MJCF ``xyaxes`` of a camera at ``pos`` looking at ``target`` (camera -z forward, +y up)."""
    fwd = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    return _v([*right, *up])


def _object_geom(obj: ObjectSpec) -> str:
    quat = ' quat="0.707107 0 0.707107 0"' if obj.shape == "capsule" and obj.lying else ""
    return (
        f'<geom name="obj{obj.id}" type="{obj.shape}" size="{_v(obj.size)}"{quat} '
        f'material="{obj.material}" contype="0" conaffinity="0"/>'
    )


def build_mjcf(spec: SceneSpec, size: tuple[int, int]) -> tuple[str, dict[str, bytes]]:
    """MJCF text of the scene and its in-memory texture assets (``{file name: PNG bytes}``).

    Objects, the gripper parts, the arm links and the ego camera rig are mocap bodies whose poses
    are set every frame; the exocentric cameras are fixed in the world.

    Args:
        spec: the scene.
        size: ``(W, H)`` of the rendered images (sets the offscreen buffer).
    """
    assets = {f"{name}.png": png_bytes(img) for name, img in spec.textures.items()}
    asset_xml = []
    for mat in spec.materials.values():
        asset_xml.append(f'<texture name="{mat.texture}" type="{mat.kind}" file="{mat.texture}.png"/>')
        uniform = ' texuniform="true"' if mat.kind == "2d" else ""
        asset_xml.append(
            f'<material name="{mat.name}" texture="{mat.texture}" rgba="{_v(mat.rgba)}" '
            f'specular="{mat.specular:.4g}" shininess="{mat.shininess:.4g}" '
            f'texrepeat="{_v(mat.texrepeat)}"{uniform}/>'
        )
    asset_xml.append('<material name="mat_robot" rgba="0.55 0.57 0.6 1" specular="0.5" shininess="0.6"/>')
    asset_xml.append('<material name="mat_robot_dark" rgba="0.15 0.15 0.17 1" specular="0.3"/>')
    asset_xml.append('<material name="mat_leg" rgba="0.25 0.2 0.16 1"/>')

    lights = [
        f'<light pos="{_v(li.pos)}" dir="{_v(li.dir)}" diffuse="{_v(li.diffuse)}" '
        f'specular="{_v(li.specular)}" castshadow="{"true" if li.castshadow else "false"}"/>'
        for li in spec.lights
    ]
    nocol = 'contype="0" conaffinity="0"'
    tx, ty = TABLE_HALF
    legs = [
        f'<geom name="leg{k}" type="box" pos="{sx * (tx - 0.05):.4f} {sy * (ty - 0.05):.4f} '
        f'{(TABLE_TOP - 0.03) / 2:.4f}" size="0.03 0.03 {(TABLE_TOP - 0.03) / 2:.4f}" material="mat_leg" {nocol}/>'
        for k, (sx, sy) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1)))
    ]
    walls = []
    for k, (x, y, hx, hy) in enumerate(
        (
            (ROOM_HALF, 0, 0.05, ROOM_HALF),
            (-ROOM_HALF, 0, 0.05, ROOM_HALF),
            (0, ROOM_HALF, ROOM_HALF, 0.05),
            (0, -ROOM_HALF, ROOM_HALF, 0.05),
        )
    ):
        walls.append(
            f'<geom name="wall{k}" type="box" pos="{x} {y} 1.25" size="{hx} {hy} 1.25" '
            f'material="mat_wall" {nocol}/>'
        )
    objects = [
        f'<body name="obj{o.id}" mocap="true" pos="{o.xy[0]:.4f} {o.xy[1]:.4f} '
        f'{TABLE_TOP + o.half_height():.4f}">{_object_geom(o)}</body>'
        for o in spec.objects
    ]
    robot = [
        f'<body name="gripper" mocap="true" pos="0 -0.4 {TABLE_TOP + 0.3}">'
        f'<geom name="palm" type="box" size="{_v(PALM_HALF)}" material="mat_robot" {nocol}/>'
        f'<geom name="wrist" type="cylinder" size="0.022 0.025" pos="0 0 {PALM_HALF[2] + 0.025}" '
        f'material="mat_robot_dark" {nocol}/></body>',
        f'<body name="finger_l" mocap="true"><geom name="finger_l" type="box" size="{_v(FINGER_HALF)}" '
        f'material="mat_robot_dark" {nocol}/></body>',
        f'<body name="finger_r" mocap="true"><geom name="finger_r" type="box" size="{_v(FINGER_HALF)}" '
        f'material="mat_robot_dark" {nocol}/></body>',
        f'<body name="upper_arm" mocap="true"><geom name="upper_arm" type="capsule" size="{ARM_RADIUS} 0.1" '
        f'material="mat_robot" {nocol}/></body>',
        f'<body name="forearm" mocap="true"><geom name="forearm" type="capsule" size="{ARM_RADIUS * 0.85} 0.1" '
        f'material="mat_robot" {nocol}/></body>',
        f'<body name="shoulder" mocap="true"><geom name="shoulder" type="sphere" size="0.04" '
        f'material="mat_robot_dark" {nocol}/></body>',
    ]
    exo = [
        f'<camera name="{c.name}" pos="{_v(c.pos)}" xyaxes="{_xyaxes(np.array(c.pos), np.array(c.target))}" '
        f'fovy="{c.fovy:.4f}"/>'
        for c in spec.exo
    ]
    w, h = size
    xml = f"""<mujoco model="corr_tabletop">
  <statistic extent="2" center="0 0 {TABLE_TOP}"/>
  <visual>
    <global offwidth="{w}" offheight="{h}"/>
    <headlight ambient="{_v(spec.ambient)}" diffuse="{_v(spec.headlight)}" specular="0 0 0"/>
    <quality shadowsize="{512 if spec.shadows else 0}"/>
    <map znear="0.01" zfar="5"/>
  </visual>
  <asset>
    {chr(10).join(asset_xml)}
  </asset>
  <worldbody>
    {chr(10).join(lights)}
    <geom name="floor" type="plane" size="{ROOM_HALF} {ROOM_HALF} 0.1" material="mat_floor" {nocol}/>
    {chr(10).join(walls)}
    <geom name="table" type="box" pos="0 0 {TABLE_TOP - 0.015}" size="{tx} {ty} 0.015" material="mat_table" {nocol}/>
    {chr(10).join(legs)}
    {chr(10).join(objects)}
    {chr(10).join(robot)}
    <body name="ego_rig" mocap="true" pos="0 -0.8 {TABLE_TOP + 0.6}"><camera name="ego" fovy="{spec.ego.fovy:.4f}"/></body>
    {chr(10).join(exo)}
  </worldbody>
</mujoco>
"""
    return xml, assets
