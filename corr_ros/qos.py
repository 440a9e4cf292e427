"""QoS profiles for corr's topics, overridable by node parameters.

Camera inputs use the sensor-data profile (best effort, keep last, small depth) so a slow
subscriber never back-pressures a camera driver; outputs (labels, overlays, summaries, masks)
use reliable keep-last. Both are overridable by parameters ``qos.<which>.depth`` and
``qos.<which>.reliability`` (``"best_effort"`` or ``"reliable"``).

Compatibility: a reliable publisher can feed a best-effort subscriber, not the other way round;
a volatile subscriber accepts both volatile and transient-local publishers.
"""

from __future__ import annotations

from rcl_interfaces.msg import IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from corr_core.errors import ConfigError

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


def declare_qos_parameters(node: Node, roles: tuple[str, ...] = ("input", "masks", "output")) -> None:
    """Declares ``qos.<role>.depth`` and ``qos.<role>.reliability`` for each role on ``node``."""
    for role in roles:
        depth, reliability = DEFAULTS[role]
        node.declare_parameter(
            f"qos.{role}.depth",
            depth,
            ParameterDescriptor(
                description=f"QoS history depth (keep last N) of the {role} topics",
                integer_range=[IntegerRange(from_value=1, to_value=MAX_DEPTH, step=1)],
            ),
        )
        node.declare_parameter(
            f"qos.{role}.reliability",
            reliability,
            ParameterDescriptor(
                description=f"QoS reliability of the {role} topics: 'best_effort' or 'reliable'",
                additional_constraints="one of: best_effort, reliable",
            ),
        )


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
