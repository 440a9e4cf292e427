"""Helpers shared by the ``corr`` commands: output locations that never replace an earlier run
silently, default run folders, device checks.

Torch-free at import time (commands build their parsers without loading torch).
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

from corr_core.errors import ConfigError

__all__ = ["add_overwrite_arg", "check_device", "check_output", "timestamped"]


def timestamped(folder: str | Path, prefix: str, suffix: str = "") -> Path:
    """``folder/<prefix>-<YYYYmmdd-HHMMSS><suffix>``: the default output of a command."""
    return Path(folder) / f"{prefix}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}{suffix}"


def add_overwrite_arg(parser: argparse.ArgumentParser, what: str = "an existing --out") -> None:
    """Adds ``--overwrite`` (as ``corr bag export`` has it)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"write over {what} (without it, such an output is refused)")


def check_output(path: Path, overwrite: bool, flag: str = "--out") -> Path:
    """Refuses an output that holds an earlier result unless ``overwrite`` is set.

    Args:
        path: an output folder (refused when it exists and is not empty) or file (refused when it
            exists).
        overwrite: the user passed ``--overwrite``.
        flag: the option that named ``path``, for the message.

    Returns:
        ``path``.

    Raises:
        ConfigError: ``path`` holds an earlier result and ``overwrite`` is False.
    """
    path = Path(path)
    if overwrite or not path.exists():
        return path
    if path.is_dir():
        entries = sorted(p.name for p in path.iterdir())
        if not entries:
            return path
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ConfigError(f"{flag} {path}: the folder holds an earlier run ({shown}); pass --overwrite to write "
                          f"over it, or choose another {flag}")
    raise ConfigError(f"{flag} {path}: the file exists already; pass --overwrite to replace it, or choose "
                      f"another {flag}")


def check_device(device: str, flag: str = "--device") -> None:
    """Refuses a CUDA device where CUDA is not available (imports torch).

    Raises:
        ConfigError: naming the device.
    """
    if str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{flag} {device}: CUDA is not available here; use {flag} cpu")
