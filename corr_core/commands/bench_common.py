"""What the ``corr bench`` tasks share: frame sizes, host facts and the report files (JSON plus a
Markdown table beside it, ``--out`` / ``--overwrite``). Torch-free at import time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from corr_core.commands.common import add_overwrite_arg, check_output, timestamped
from corr_core.errors import ConfigError

__all__ = ["RESOLUTIONS", "add_report_args", "check_out_arg", "cpu_name", "parse_resolution", "parse_resolutions", "write_report"]

RESOLUTIONS = {"480p": (480, 854), "240p": (240, 427), "360p": (360, 640), "720p": (720, 1280)}


def parse_resolution(text: str) -> tuple[str, tuple[int, int]]:
    """``"480p"`` -> ``("480p", (480, 854))``; ``"64x96"`` -> ``("64x96", (64, 96))``.

    Raises:
        ConfigError: for anything else.
    """
    name = text.strip()
    if name in RESOLUTIONS:
        return name, RESOLUTIONS[name]
    parts = name.lower().split("x")
    if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
        return name, (int(parts[0]), int(parts[1]))
    raise ConfigError(f"--resolutions: {name!r} is neither one of {sorted(RESOLUTIONS)} nor HxW (e.g. 64x96)")


def parse_resolutions(text: str) -> list[tuple[str, tuple[int, int]]]:
    """``"480p,64x96"`` -> ``[("480p", (480, 854)), ("64x96", (64, 96))]``.

    Raises:
        ConfigError: an unknown size, or none.
    """
    resolutions = [parse_resolution(r) for r in text.split(",") if r.strip()]
    if not resolutions:
        raise ConfigError("--resolutions is empty")
    return resolutions


def add_report_args(parser: argparse.ArgumentParser, prefix: str) -> None:
    """``--out`` (the report JSON, a ``.md`` table beside it; :func:`write_report`'s default
    ``runs/bench/<prefix>-<time>.json``) and ``--overwrite``, as every ``corr bench`` task has them."""
    parser.add_argument("--out", type=Path, default=None,
                        help=f"result JSON (a .md table beside it); default runs/bench/{prefix}-<time>.json")
    add_overwrite_arg(parser, "an existing --out report")


def check_out_arg(out: Path | None, overwrite: bool) -> None:
    """``--out`` must name a ``.json`` file that does not exist yet (unless ``--overwrite``).

    Raises:
        ConfigError: another suffix, or an existing report (or its ``.md``) without ``overwrite``.
    """
    if out is None:
        return
    if out.suffix != ".json":
        raise ConfigError(f"--out must name a .json file, got {out}")
    check_output(out, overwrite)
    check_output(out.with_suffix(".md"), overwrite, flag="--out (its table)")


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_facts() -> dict[str, Any]:
    """Machine, processor, CPU count and Python version, for a report's ``host`` entry."""
    return {"machine": platform.machine(), "processor": cpu_name(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def write_report(report: dict[str, Any], out: Path | None, prefix: str, table: str) -> Path:
    """Writes ``out`` (JSON; default ``runs/bench/<prefix>-<time>.json``) and the table beside it
    (``.md``), prints the table; returns the JSON path."""
    if out is None:
        out = timestamped(Path("runs") / "bench", prefix, ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return out
