"""Report files shared by the evaluation protocols: strict JSON, CSV rows, progress lines."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_ready", "log", "timestamp", "write_csv", "write_json"]


def json_ready(obj: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python numbers, so that ``metrics.json`` is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def timestamp() -> str:
    """The current UTC time, ISO 8601 to the second (the ``timestamp`` of every ``metrics.json``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Writes a CSV table: floats with 6 decimals, None as an empty cell, anything else as is."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else (f"{v:.6f}" if isinstance(v, float) else v) for v in row])


def write_json(path: str | Path, data: Any) -> None:
    """Writes ``data`` as indented JSON with a final newline."""
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def log(progress: bool, msg: str) -> None:
    """Prints a progress line to stderr when ``progress`` is set."""
    if progress:
        print(msg, file=sys.stderr, flush=True)
