"""Declared node parameters: one table per node, with description, type, range and liveness.

Each node lists its parameters as :class:`ParamSpec` rows; :func:`declare_all` declares them with
descriptors (description, range, constraints) and names every override (command line or parameter
file) that matches no declared parameter, and :meth:`ParamSpec.check` is what the nodes'
on-set-parameters callbacks use to reject bad values with a reason. The tables are also what the
tests compare the YAML parameter files against. Settings shared with the command line (the model
and label propagation options of :mod:`corr_core.options`) become rows through
:func:`from_option`, so they are defined once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from corr_core.errors import ConfigError
from corr_core.options import Option

_PY_TYPES = {
    Parameter.Type.BOOL: (bool,),
    Parameter.Type.INTEGER: (int,),
    Parameter.Type.DOUBLE: (float, int),
    Parameter.Type.STRING: (str,),
    Parameter.Type.STRING_ARRAY: (list, tuple),
}

TOPIC_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    Attributes:
        name: parameter name (dots for nesting, e.g. ``qos.input.depth``).
        type: the rclpy parameter type.
        default: default value (for string arrays, ``()`` means "unset", declared by type).
        description: shown by ``ros2 param describe``.
        live: True if a change takes effect while the node runs; False if it is structural
            (only accepted while the node is unconfigured, applied at the next configure).
        range: inclusive ``(low, high)`` for numbers.
        choices: allowed values for strings (a value may also match ``choice_pattern``).
        choice_pattern: a regex a string value may match instead of ``choices``.
        min_items: least number of entries for string arrays.
        topic_tokens: string array entries must be valid relative ROS names.
    """

    name: str
    type: Parameter.Type
    default: Any
    description: str
    live: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    choice_pattern: str | None = None
    min_items: int = 0
    topic_tokens: bool = False

    def descriptor(self) -> ParameterDescriptor:
        """The ROS parameter descriptor (description, range, constraints)."""
        notes = ["changes apply live" if self.live else "structural: change it while unconfigured"]
        if self.choices:
            allowed = ", ".join(self.choices) + (" (or cuda:N)" if self.choice_pattern else "")
            notes.append(f"one of: {allowed}")
        if self.min_items:
            notes.append(f"at least {self.min_items} entries")
        desc = ParameterDescriptor(
            name=self.name,
            type=self.type.value,
            description=self.description,
            additional_constraints="; ".join(notes),
        )
        if self.range is not None and self.type == Parameter.Type.INTEGER:
            desc.integer_range = [
                IntegerRange(from_value=int(self.range[0]), to_value=int(self.range[1]), step=1)
            ]
        elif self.range is not None and self.type == Parameter.Type.DOUBLE:
            desc.floating_point_range = [
                FloatingPointRange(from_value=float(self.range[0]), to_value=float(self.range[1]), step=0.0)
            ]
        return desc

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this parameter, or None if it is."""
        types = _PY_TYPES.get(self.type, ())
        if types and (
            not isinstance(value, types) or (self.type != Parameter.Type.BOOL and isinstance(value, bool))
        ):
            return f"parameter '{self.name}' must be of type {self.type.name}, got {value!r}"
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            return f"parameter '{self.name}' must be in [{self.range[0]}, {self.range[1]}], got {value}"
        if self.type == Parameter.Type.STRING and (self.choices or self.choice_pattern):
            ok = value in (self.choices or ()) or (
                self.choice_pattern is not None and re.fullmatch(self.choice_pattern, value) is not None
            )
            if not ok:
                return f"parameter '{self.name}' must be one of {list(self.choices or ())}, got {value!r}"
        if self.type == Parameter.Type.STRING_ARRAY:
            items = list(value)
            if len(items) < self.min_items:
                return f"parameter '{self.name}' needs at least {self.min_items} entries, got {items}"
            if self.topic_tokens:
                bad = [v for v in items if not TOPIC_TOKEN.match(v)]
                if bad:
                    return f"parameter '{self.name}': {bad} are not valid relative ROS names"
                if len(set(items)) != len(items):
                    return f"parameter '{self.name}' has duplicate entries: {items}"
        return None


_PARAM_TYPES = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
                str: Parameter.Type.STRING}

#: Key of :func:`declare_all`'s error for overrides that match no declared parameter.
UNKNOWN_OVERRIDES = "unknown parameters"


def from_option(opt: Option, description: str | None = None, **extra: Any) -> ParamSpec:
    """The ROS parameter of a shared setting of :mod:`corr_core.options` (same name, type, default,
    range, choices and liveness).

    Args:
        opt: the shared setting.
        description: replaces the option's help (default: the help itself).
        extra: further :class:`ParamSpec` fields (e.g. ``choice_pattern``).
    """
    default = float(opt.default) if opt.type is float else opt.default
    fields: dict[str, Any] = {"live": opt.live, "range": opt.range, "choices": opt.choices, **extra}
    return ParamSpec(opt.name, _PARAM_TYPES[opt.type], default, description or opt.help, **fields)


def unknown_overrides(node: Node, specs: Iterable[ParamSpec]) -> str | None:
    """Why the node's parameter overrides (``-p name:=value``, ``--params-file``) name parameters
    it does not declare, or None when they all match.

    Call it after declaring every parameter: rclpy itself ignores such overrides silently, so a
    misspelt name (``camerass``) would leave the node running on the default.
    """
    declared = {spec.name for spec in specs}
    unknown = sorted(name for name in node._parameter_overrides if not node.has_parameter(name))
    if not unknown:
        return None
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(declared), n=1)
        hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return (
        f"unknown parameter(s) {', '.join(hints)} given on the command line or in a parameter file "
        f"for node '{node.get_name()}'; known parameters: {', '.join(sorted(declared))}. Restart the node "
        "without them."
    )


def _node_pattern(key: str) -> re.Pattern[str]:
    """A parameter-file node key (``/**``, ``corr_node``, ``/ns/*/corr_node``) as a regex of fully
    qualified node names."""
    key = key if key.startswith("/") else "/" + key
    regex = re.escape(key).replace(r"/\*\*", "(?:/[^/]+)*").replace(r"\*", "[^/]+")
    return re.compile(regex + "$" if regex else "/[^/]+$")


def explicit_empty_lists(args: Sequence[str], node_fqn: str) -> dict[str, str]:
    """Parameters given as an empty list (``-p cameras:=[]``, or ``cameras: []`` in a
    ``--params-file``) for the node ``node_fqn`` (e.g. ``/corr_node``), with where each was given.

    rcl cannot tell such a value's type, so it drops it: a value set earlier (the shipped parameter
    file) silently stays. The nodes read the ROS arguments themselves to notice.
    """
    found: dict[str, str] = {}
    ros = False
    items = list(args)
    for i, arg in enumerate(items):
        if arg == "--ros-args":
            ros = True
        elif arg == "--":
            ros = False
        elif ros and arg in ("-p", "--param") and i + 1 < len(items) and ":=" in items[i + 1]:
            name, value = items[i + 1].split(":=", 1)
            if ":" in name:
                node, name = name.rsplit(":", 1)
                if not _node_pattern(node).match(node_fqn):
                    continue
            if re.fullmatch(r"\s*\[\s*\]\s*", value):
                found[name] = f"'-p {items[i + 1]}' on the command line"
        elif ros and arg == "--params-file" and i + 1 < len(items):
            path = Path(items[i + 1])
            try:
                import yaml

                doc = yaml.safe_load(path.read_text())
            except (OSError, ValueError):  # rcl reports unreadable files itself
                continue
            for key, section in (doc or {}).items() if isinstance(doc, dict) else ():
                params = section.get("ros__parameters") if isinstance(section, dict) else None
                if isinstance(params, dict) and _node_pattern(str(key)).match(node_fqn):
                    for name, value in flatten_yaml_params(params).items():
                        if value == []:
                            found[name] = f"'{name}: []' in {path}"
    return found


def declare_all(node: Node, specs: Iterable[ParamSpec], args: Sequence[str] | None = None) -> dict[str, str]:
    """Declares every parameter; an override that fails its range/type is replaced by the default.

    Args:
        node: the node.
        specs: its parameters.
        args: the process's ROS arguments (e.g. ``sys.argv``), to notice empty lists rcl drops
            (see :func:`explicit_empty_lists`); None skips that check.

    Returns:
        ``{name: reason}`` for every rejected override or invalid value (an empty list included),
        and under :data:`UNKNOWN_OVERRIDES` the overrides that match no declared parameter (so the
        node can report them instead of dying, or running on defaults without a word).
    """
    specs = list(specs)
    errors: dict[str, str] = {}
    by = by_name(specs)
    for name, where in explicit_empty_lists(args or [], node.get_fully_qualified_name()).items():
        spec = by.get(name)
        if spec is None or spec.type != Parameter.Type.STRING_ARRAY:
            continue
        if spec.min_items:
            errors[name] = f"parameter '{name}' needs at least {spec.min_items} entries, got [] ({where})"
        elif spec.default:
            errors[name] = (
                f"parameter '{name}' cannot be emptied with [] ({where}): ROS keeps the value set before "
                "it; leave the parameter out instead"
            )
    for spec in specs:
        default = spec.type if spec.type == Parameter.Type.STRING_ARRAY and not spec.default else spec.default
        try:
            node.declare_parameter(spec.name, default, spec.descriptor())
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            errors[spec.name] = (
                f"parameter '{spec.name}': override rejected ({exc}); using default {spec.default!r}"
            )
            node.declare_parameter(spec.name, default, spec.descriptor(), ignore_override=True)
            continue
        reason = spec.check(value_of(node, spec))
        if reason is not None:
            errors.setdefault(spec.name, reason)
    unknown = unknown_overrides(node, specs)
    if unknown is not None:
        errors[UNKNOWN_OVERRIDES] = unknown
    return errors


def value_of(node: Node, spec: ParamSpec) -> Any:
    """The parameter's current value (an unset string array reads as ``[]``)."""
    if spec.type == Parameter.Type.STRING_ARRAY:
        param = node.get_parameter_or(spec.name, Parameter(spec.name, Parameter.Type.STRING_ARRAY, []))
        return list(param.value or [])
    value = node.get_parameter(spec.name).value
    if spec.type == Parameter.Type.DOUBLE:
        return float(value)
    return value


def values(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """``{name: value}`` for every spec."""
    return {spec.name: value_of(node, spec) for spec in specs}


def declare_and_read(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declares every parameter and returns ``{name: value}``, for nodes that cannot run with a
    bad parameter (the player, the recorder; corr_node reports instead, see :func:`declare_all`).

    Raises:
        ConfigError: naming every rejected override.
    """
    errors = declare_all(node, specs)
    if errors:
        raise ConfigError("; ".join(errors.values()))
    return values(node, specs)


def by_name(specs: Sequence[ParamSpec]) -> dict[str, ParamSpec]:
    """``{name: spec}``."""
    return {spec.name: spec for spec in specs}


def flatten_yaml_params(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens a ``ros__parameters`` mapping into dotted names (``{"qos": {"input": {"depth": 3}}}``
    gives ``{"qos.input.depth": 3}``)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_yaml_params(value, name + "."))
        else:
            flat[name] = value
    return flat
