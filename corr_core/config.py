"""YAML configuration with dotted command-line overrides, saved with every run.

``load_config("training/fc_cpu.yaml", ["optim.lr=3e-4", "train.iters=100"])`` returns a plain
nested dict. Values of overrides are parsed as YAML scalars (``true``, ``1e-3``, ``[1, 2]``).
A key that the file does not define is rejected, so typos do not pass silently.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from corr_core.errors import ConfigError


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping, honouring an optional top-level ``_base_: other.yaml`` (relative)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    base = data.pop("_base_", None)
    if base:
        data = merge(load_yaml(path.parent / base), data)
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``over`` wins. Inputs are not modified."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_overrides(cfg: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Applies ``a.b.c=value`` overrides; the key path must exist in ``cfg``."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = cfg
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"override {item!r}: no section {p!r} in the config")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key {key!r} (known here: {sorted(node)})")
        node[parts[-1]] = parse_value(raw, item)
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
    """``load_yaml`` + ``apply_overrides``."""
    return apply_overrides(load_yaml(path), overrides)


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
