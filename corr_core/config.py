"""YAML configuration with dotted command-line overrides, saved with every run.

Two loaders:

* :func:`load_training_config` for training recipes (``corr train``): the packaged defaults,
  ``corr_core/configs/defaults.yaml``, are merged under the recipe (and its ``_base_`` chain)
  before the overrides, as dinov2 merges its default config under every recipe. Every key must
  exist in the defaults, in a recipe file as on the command line (the error names the key, the
  file and the known keys of the section, with the closest match), and every value must have its
  default's type (a clear :class:`~corr_core.errors.ConfigError`, not a traceback). One path
  where the defaults hold a list of paths is taken as a one-element list.
* :func:`load_config` for any other YAML file: the file with its overrides, keys checked against
  the file itself.

``load_training_config("training/fc_cpu.yaml", ["optim.lr=3e-4", "train.iters=100"])`` returns a
plain nested dict. Values of overrides are parsed as YAML scalars (``true``, ``1e-3``, ``[1, 2]``).
"""

from __future__ import annotations

import copy
import datetime as _dt
import difflib
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from corr_core.errors import ConfigError

__all__ = ["DEFAULTS_PATH", "apply_overrides", "check_training_config", "git_sha", "load_config",
           "load_training_config", "load_yaml", "merge", "parse_value", "save_run_config", "training_defaults"]

#: The packaged defaults of every training recipe.
DEFAULTS_PATH = Path(__file__).resolve().parent / "configs" / "defaults.yaml"
#: A default that every recipe must replace (OmegaConf's spelling).
REQUIRED = "???"


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _chain(path: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """``[(file, its mapping without _base_), ...]``, the deepest ``_base_`` first."""
    path = Path(path)
    data = _read_mapping(path)
    base = data.pop("_base_", None)
    if not base:
        return [(path, data)]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: _base_ must be a file name, got {base!r}")
    return [*_chain(path.parent / base), (path, data)]


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping, honouring an optional top-level ``_base_: other.yaml`` (relative)."""
    out: dict[str, Any] = {}
    for _, data in _chain(path):
        out = merge(out, data)
    return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``over`` wins. Inputs are not modified."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _close(key: str, known: list[str]) -> str:
    match = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def apply_overrides(
    cfg: dict[str, Any],
    overrides: list[str] | None,
    schema: dict[str, Any] | None = None,
    items: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Applies ``a.b.c=value`` overrides; the key path must exist in ``cfg``.

    Args:
        cfg: the config (not modified).
        overrides: ``key.path=value`` words.
        schema: defaults to check each value's type against (see :func:`load_training_config`).
        items: item defaults of lists of mappings, by dotted key (with ``schema``).

    Raises:
        ConfigError: a malformed override, an unknown key (with the closest known one) or, with
            ``schema``, a value of the wrong type.
    """
    cfg = copy.deepcopy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node, spec = cfg, schema
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"override {item!r}: no section {p!r} in the config{_close(p, sorted(node))}")
            node = node[p]
            spec = spec.get(p) if isinstance(spec, dict) else None
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key {key.strip()!r}{_close(parts[-1], sorted(node))} "
                              f"(known here: {sorted(node)})")
        value = parse_value(raw, item)
        if isinstance(spec, dict) and parts[-1] in spec:
            value = _checked(value, spec[parts[-1]], key.strip(), f"override {item!r}", items)
        node[parts[-1]] = value
    return cfg


def parse_value(raw: str, what: str = "value") -> Any:
    """A YAML scalar/list, with ``1e-4`` read as a float (YAML 1.1 wants ``1.0e-4``)."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {what!r}: value is not valid YAML ({exc})") from exc
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """``load_yaml`` + ``apply_overrides`` (no defaults: for YAML files other than recipes)."""
    return apply_overrides(load_yaml(path), overrides)


# ------------------------------------------------------------------------------ training recipes


def _raw_defaults() -> dict[str, Any]:
    return _read_mapping(DEFAULTS_PATH)


def training_defaults(method: str) -> dict[str, Any]:
    """The defaults of a training recipe for ``method``: :data:`DEFAULTS_PATH` with its model
    section filled from ``_models_.<method>``, the sections of ``_sections_.<method>`` replacing
    (or adding to, or with ``null`` removing) the common ones, and the private ``_..._`` entries
    removed.

    Raises:
        ConfigError: no model defaults for ``method``.
    """
    raw = _raw_defaults()
    models = raw.pop("_models_", {})
    raw.pop("_list_items_", None)
    sections = raw.pop("_sections_", {})
    if method not in models:
        raise ConfigError(f"method {method!r} is unknown (known: {sorted(models)}; the model defaults of each "
                          f"method are _models_.<method> in {DEFAULTS_PATH})")
    for key, section in (sections.get(method) or {}).items():  # a method's own sections replace the common ones
        if section is None:  # ... or remove a common one the method has no use for
            raw.pop(key, None)
        else:
            raw[key] = copy.deepcopy(section)
    raw["method"] = method
    raw["model"] = copy.deepcopy(models[method])
    return raw


def _list_item_schemas() -> dict[str, dict[str, Any]]:
    return _raw_defaults().get("_list_items_", {})


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "a mapping"}


def _checked(value: Any, default: Any, key: str, where: str, items: Any = None) -> Any:
    """``value`` checked against the type of ``default`` (and coerced where that is safe).

    Args:
        value: the value a recipe or override gives.
        default: its default (``None``: anything; :data:`REQUIRED`: any string-or-other value).
        key: dotted key, for messages.
        where: the file or override, for messages.
        items: item schemas of lists of mappings (``{dotted key: item defaults}``).
    """

    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key} must be {expected}, got {value!r} ({type(value).__name__})")

    if default is None or default == REQUIRED:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong(_TYPE_NAMES[bool])
        return value
    if isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong(_TYPE_NAMES[int])
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong(_TYPE_NAMES[float])
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise wrong(_TYPE_NAMES[str])
        return value
    if isinstance(default, list):
        paths = not default or all(isinstance(d, str) for d in default)
        if isinstance(value, str) and paths and not (items or {}).get(key):
            return [value]  # one path where a list of paths is expected
        if not isinstance(value, list):
            raise wrong(_TYPE_NAMES[list] + (" (or one path)" if paths and not (items or {}).get(key) else ""))
        item_schema = (items or {}).get(key)
        if item_schema is not None:
            return [_checked_item(v, item_schema, f"{key}[{i}]", where, items) for i, v in enumerate(value)]
        if default:
            return [_checked(v, default[0], f"{key}[{i}]", where, items) for i, v in enumerate(value)]
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise wrong(_TYPE_NAMES[dict])
        return _checked_section(value, default, key, where, items)
    return value


def _checked_item(value: Any, schema: dict[str, Any], key: str, where: str, items: Any) -> dict[str, Any]:
    """One entry of a list of mappings, filled from its item defaults and checked."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a mapping with keys {sorted(schema)}, got {value!r}")
    out = merge(schema, _checked_section(value, schema, key, where, items))
    missing = [k for k, v in out.items() if v == REQUIRED]
    if missing:
        raise ConfigError(f"{where}: {key} needs {', '.join(missing)} (keys: {sorted(schema)})")
    return out


def _checked_section(section: dict[str, Any], schema: dict[str, Any], prefix: str, where: str,
                     items: Any) -> dict[str, Any]:
    """Checks the keys and types of ``section`` against ``schema``; returns it with coercions."""
    out = {}
    for k, v in section.items():
        dotted = f"{prefix}.{k}" if prefix else str(k)
        if k not in schema:
            known = sorted(schema)
            part = f"section {prefix!r}" if prefix else "the top level"
            raise ConfigError(f"{where}: unknown key {dotted!r}{_close(str(k), known)}; known keys of {part}: "
                              f"{known}")
        out[k] = _checked(v, schema[k], dotted, where, items)
    return out


def _method_of(chain: list[tuple[Path, dict[str, Any]]], overrides: list[str] | None) -> str:
    method = None
    for _, data in chain:
        method = data.get("method", method)
    for item in overrides or []:
        key, _, raw = item.partition("=")
        if key.strip() == "method":
            method = parse_value(raw, item)
    if method is None or method == REQUIRED:
        raise ConfigError(f"{chain[-1][0]}: no method given (set `method:`, one of "
                          f"{sorted(_raw_defaults().get('_models_', {}))})")
    if not isinstance(method, str):
        raise ConfigError(f"{chain[-1][0]}: method must be a string, got {method!r}")
    return method


def load_training_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """A training recipe resolved: defaults, then the ``_base_`` chain, then the overrides.

    Args:
        path: recipe YAML (``training/*.yaml``).
        overrides: ``key.path=value`` words from the command line.

    Returns:
        The resolved config: every key of the defaults, with the recipe's and overrides' values.

    Raises:
        ConfigError: a missing or invalid file, an unknown key (naming the key, the file or the
            override, and the known keys of its section), a value of the wrong type, a missing
            method.
    """
    chain = _chain(path)
    method = _method_of(chain, overrides)
    schema = training_defaults(method)
    items = _list_item_schemas()
    cfg = schema
    for file, data in chain:
        cfg = merge(cfg, _checked_section(data, schema, "", str(file), items))
    return apply_overrides(cfg, overrides, schema, items)


def check_training_config(cfg: dict[str, Any], source: str = "training config") -> dict[str, Any]:
    """A config dict (e.g. from :func:`load_config`) checked and completed as a recipe is.

    Returns:
        A resolved copy: the defaults of its method under it, every key and type checked.

    Raises:
        ConfigError: as :func:`load_training_config`, naming ``source``.
    """
    method = cfg.get("method")
    if not isinstance(method, str) or method == REQUIRED:
        raise ConfigError(f"{source}: no method given (set `method:`, one of "
                          f"{sorted(_raw_defaults().get('_models_', {}))})")
    schema = training_defaults(method)
    return merge(schema, _checked_section(cfg, schema, "", source, _list_item_schemas()))


# ------------------------------------------------------------------------------ provenance


def git_sha(repo: str | Path | None = None) -> str:
    """The current git commit (with ``-dirty`` when the tree has changes), or ``"unknown"``."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_run_config(run_dir: str | Path, cfg: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Writes ``config.yaml`` (resolved) and ``provenance.json`` (git SHA, time, extras) in ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    prov = {"git_sha": git_sha(), "time": _dt.datetime.now(_dt.timezone.utc).isoformat(), **(extra or {})}
    (run_dir / "provenance.json").write_text(json.dumps(prov, indent=2, default=str))
