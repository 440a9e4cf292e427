"""Results of a DAVIS evaluation: per-object scores, the official global numbers, tables and CSV."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["GLOBAL_KEYS", "OBJECT_KEYS", "DavisResults", "ObjectResult", "Results", "global_metrics"]

GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
OBJECT_KEYS = ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


@dataclass
class ObjectResult:
    """Per-frame scores and statistics of one object in one sequence."""

    sequence: str
    object_id: int
    frame_ids: list[str]
    J: np.ndarray
    F: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<sequence>_<id>``, the official per-object name."""
        return f"{self.sequence}_{self.object_id}"

    def row(self) -> dict:
        """One table row: sequence, object, J&F-Mean and the six per-object statistics."""
        return {
            "sequence": self.sequence,
            "object": self.object_id,
            "J&F-Mean": (self.stats["J-Mean"] + self.stats["F-Mean"]) / 2,
            **{k: self.stats[k] for k in OBJECT_KEYS},
        }


@dataclass
class DavisResults:
    """Result of :func:`~corr_core.metrics.davis.files.evaluate_davis`: per-object scores and the global DAVIS numbers."""

    objects: list[ObjectResult]
    global_metrics: dict[str, float]
    sequences: list[str]
    n_frames: int
    seconds: float
    predicted_objects: dict[str, int] = field(default_factory=dict)
    missing_objects: dict[str, list[int]] = field(default_factory=dict)

    def per_object_rows(self) -> list[dict]:
        """Rows ``{sequence, object, J&F-Mean, J-Mean, ..., F-Decay}`` in evaluation order."""
        return [o.row() for o in self.objects]

    def object(self, sequence: str, object_id: int = 1) -> ObjectResult:
        """The result of one object; KeyError if it was not evaluated."""
        for o in self.objects:
            if o.sequence == sequence and o.object_id == object_id:
                return o
        raise KeyError(f"{sequence}_{object_id}")

    def to_dict(self) -> dict:
        """JSON-ready summary: global metrics, per-object rows and per-frame values."""
        return {
            "global": dict(self.global_metrics),
            "per_object": [
                {**o.row(), "frames": list(o.frame_ids), "J": o.J.tolist(), "F": o.F.tolist()}
                for o in self.objects
            ],
            "sequences": list(self.sequences),
            "n_objects": len(self.objects),
            "n_frames": self.n_frames,
            "seconds": self.seconds,
            "missing_objects": {k: list(v) for k, v in self.missing_objects.items()},
        }

    def table(self) -> str:
        """Plain-text tables: the global metrics, then one row per object."""
        lines = ["  ".join(f"{k:>9}" for k in GLOBAL_KEYS)]
        lines.append("  ".join(f"{self.global_metrics[k]:9.4f}" for k in GLOBAL_KEYS))
        lines.append("")
        width = max([len(o.name) for o in self.objects] + [8])
        lines.append(f"{'object':<{width}}  {'J&F-Mean':>9}  {'J-Mean':>9}  {'F-Mean':>9}")
        for row, o in zip(self.per_object_rows(), self.objects, strict=True):
            lines.append(
                f"{o.name:<{width}}  {row['J&F-Mean']:9.4f}  {row['J-Mean']:9.4f}  {row['F-Mean']:9.4f}"
            )
        return "\n".join(lines)

    def write_csv(self, per_sequence_path: str | Path, summary_path: str | Path) -> None:
        """Writes the per-object table and the one-row global summary as CSV files."""
        per_sequence_path = Path(per_sequence_path)
        per_sequence_path.parent.mkdir(parents=True, exist_ok=True)
        with open(per_sequence_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["sequence", "object", "J&F-Mean", *OBJECT_KEYS])
            for row in self.per_object_rows():
                writer.writerow(
                    [row["sequence"], row["object"], *(f"{row[k]:.6f}" for k in ("J&F-Mean", *OBJECT_KEYS))]
                )
        summary_path = Path(summary_path)
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        with open(summary_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(GLOBAL_KEYS)
            writer.writerow([f"{self.global_metrics[k]:.6f}" for k in GLOBAL_KEYS])


Results = DavisResults


def global_metrics(objects: Sequence[ObjectResult]) -> dict[str, float]:
    """The official global numbers: means over objects of the per-object statistics."""
    if not objects:
        return {k: float("nan") for k in GLOBAL_KEYS}
    out = {k: float(np.mean([o.stats[k] for o in objects])) for k in OBJECT_KEYS}
    return {"J&F-Mean": (out["J-Mean"] + out["F-Mean"]) / 2.0, **out}
