"""QoS profiles for corr's topics, overridable by node parameters.

Camera inputs use the sensor-data profile (best effort, keep last, small depth) so a slow
subscriber never back-pressures a camera driver; outputs (labels, overlays, summaries, masks)
use reliable keep-last. Both are overridable by parameters ``qos.<which>.depth`` and
``qos.<which>.reliability`` (``"best_effort"`` or ``"reliable"``).

Compatibility: a reliable publisher can feed a best-effort subscriber, not the other way round;
a volatile subscriber accepts both volatile and transient-local publishers.
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from corr_core.errors import ConfigError
from corr_ros.params import ParamSpec

RELIABILITIES = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}

#: Defaults per role: (depth, reliability).
DEFAULTS = {
    "input": (5, "best_effort"),
    "masks": (10, "reliable"),
    "output": (10, "reliable"),
}

MAX_DEPTH = 1000


def reliability_policy(name: str) -> ReliabilityPolicy:
    """The rclpy reliability for ``"best_effort"`` or ``"reliable"``.

    Raises:
        ConfigError: for any other name.
    """
    try:
        return RELIABILITIES[str(name).strip().lower()]
    except KeyError:
        raise ConfigError(f"QoS reliability must be one of {sorted(RELIABILITIES)}, got {name!r}") from None


def sensor_qos(depth: int = 5, reliability: str = "best_effort") -> QoSProfile:
    """Sensor-data QoS (camera inputs): keep last ``depth``, best effort by default, volatile."""
    _check_depth(depth)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=reliability_policy(reliability),
        durability=qos_profile_sensor_data.durability,
    )


def reliable_qos(depth: int = 10, reliability: str = "reliable", transient_local: bool = False) -> QoSProfile:
    """Reliable keep-last QoS (outputs, masks); ``transient_local`` keeps the last messages for late joiners."""
    _check_depth(depth)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=reliability_policy(reliability),
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE,
    )


def _check_depth(depth: int) -> None:
    if not 1 <= int(depth) <= MAX_DEPTH:
        raise ConfigError(f"QoS depth must be in 1..{MAX_DEPTH}, got {depth}")


def qos_param_specs(roles: tuple[str, ...] = ("input", "masks", "output")) -> list[ParamSpec]:
    """Parameter rows ``qos.<role>.depth`` and ``qos.<role>.reliability`` for each role (structural)."""
    specs: list[ParamSpec] = []
    for role in roles:
        depth, reliability = DEFAULTS[role]
        specs.append(
            ParamSpec(
                f"qos.{role}.depth",
                Parameter.Type.INTEGER,
                depth,
                f"QoS history depth (keep last N) of the {role} topics",
                range=(1, MAX_DEPTH),
            )
        )
        specs.append(
            ParamSpec(
                f"qos.{role}.reliability",
                Parameter.Type.STRING,
                reliability,
                f"QoS reliability of the {role} topics",
                choices=tuple(RELIABILITIES),
            )
        )
    return specs


def qos_from_parameters(node: Node, role: str) -> QoSProfile:
    """The QoS for ``role`` built from the node's ``qos.<role>.*`` parameters.

    ``input`` gives a sensor-data profile; the other roles a volatile keep-last profile.

    Raises:
        ConfigError: if a parameter holds a bad value.
    """
    depth = node.get_parameter(f"qos.{role}.depth").value
    reliability = node.get_parameter(f"qos.{role}.reliability").value
    if role == "input":
        return sensor_qos(depth, reliability)
    return reliable_qos(depth, reliability)
