"""Comparing evaluation runs: side-by-side global metrics and a paired, bootstrapped difference.

Reads the ``metrics.json`` files that every ``corr eval`` task writes (``{"global": {metric:
number}, "per_object": [...], "model": {...}, "protocol": ...}``). :func:`compare_runs` collects
the global metrics of several runs; for two VOS runs on the same objects,
:func:`paired_difference` gives the per-object difference with a 95 % interval from a cluster
bootstrap over sequences; :func:`format_comparison` renders both as Markdown. ``corr eval
compare`` is the command-line front end.

Example::

    result = compare_runs(["runs/eval/dev480p_rand", "runs/eval/dev480p_fc/metrics.json"])
    print(format_comparison(result))
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from corr_core.errors import ConfigError, DataError

__all__ = ["compare_runs", "format_comparison", "load_run_metrics", "paired_difference"]


def _is_value(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def load_run_metrics(path: str | Path) -> tuple[Path, dict]:
    """Reads a ``metrics.json`` written by any ``corr eval`` task (a run folder works too).

    Returns:
        ``(path of the file, its dictionary)``.

    Raises:
        DataError: missing file, invalid JSON, or not of the form ``{"global": {metric: number}}``
            (the message names the file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise DataError(f"metrics file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    form = "expected an object with a 'global' dictionary of metric values, as `corr eval` writes"
    if not isinstance(data, dict) or not isinstance(data.get("global"), dict):
        raise DataError(f"{path}: not a corr metrics.json ({form})")
    values = {k: v for k, v in data["global"].items() if _is_value(v)}
    if not any(v is not None for v in values.values()):
        raise DataError(f"{path}: 'global' holds no numeric metric ({form})")
    return path, data


def _run_labels(runs: list[tuple[Path, dict]]) -> list[str]:
    """Folder names; where they clash, the checkpoint (or random-init seed); then a #index suffix."""
    labels = [p.resolve().parent.name or str(p.parent) for p, _ in runs]
    if len(set(labels)) == len(labels):
        return labels
    out = []
    for (_, data), label in zip(runs, labels, strict=True):
        if labels.count(label) > 1:
            model = data.get("model") if isinstance(data.get("model"), dict) else {}
            if model.get("checkpoint"):
                label = Path(str(model["checkpoint"])).name
            elif model.get("random_init_seed") is not None:
                label = f"random-init-{model['random_init_seed']}"
        out.append(label)
    counts: dict[str, int] = {}
    final = []
    for label in out:
        if out.count(label) > 1:
            counts[label] = counts.get(label, 0) + 1
            label = f"{label}#{counts[label]}"
        final.append(label)
    return final


def compare_runs(paths: list[str | Path]) -> dict[str, Any]:
    """Collects the global metrics of several runs for a side-by-side table.

    Returns:
        ``{"labels": [...], "paths": [...], "protocols": [...], "metrics": [names in order of first
        appearance], "values": [{metric: value or None}, ...] (one per run), "delta": {metric: b - a}
        (two runs only, where both are numbers), "paired": :func:`paired_difference` of two VOS
        runs on the same objects, else None}``.

    Raises:
        ConfigError: fewer than two runs.
        DataError: a file that is missing or not a metrics.json (names the file).
    """
    if len(paths) < 2:
        raise ConfigError(f"compare needs at least two metrics.json files, got {len(paths)}")
    runs = [load_run_metrics(p) for p in paths]
    names: list[str] = []
    values = []
    for _, data in runs:
        vals = {k: v for k, v in data["global"].items() if _is_value(v)}
        names.extend(k for k in vals if k not in names)
        values.append(vals)
    delta: dict[str, float] = {}
    paired = None
    if len(runs) == 2:
        for k in names:
            a, b = values[0].get(k), values[1].get(k)
            if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
                delta[k] = float(b) - float(a)
        paired = paired_difference(runs[0][1], runs[1][1])
    return {
        "labels": _run_labels(runs),
        "paths": [str(p) for p, _ in runs],
        "protocols": [data.get("protocol") for _, data in runs],
        "metrics": names,
        "values": values,
        "delta": delta,
        "paired": paired,
    }


def paired_difference(
    a: dict, b: dict, metric: str = "J&F-Mean", n_boot: int = 2000, seed: int = 0
) -> dict[str, Any] | None:
    """Per-object paired difference ``b - a`` of two VOS runs on the same objects.

    Objects are matched by ``(sequence, object)`` in the runs' ``per_object`` lists. The 95 %
    interval is a cluster bootstrap over *sequences* (objects of one video are not independent):
    sequences are drawn with replacement ``n_boot`` times and the mean difference over their
    objects is recomputed.

    Returns:
        ``{"metric", "objects", "sequences", "mean", "ci95": [lo, hi], "b_better", "a_better",
        "ties"}``; None when the runs share no object (e.g. not VOS runs).
    """
    import numpy as np

    def table(data: dict) -> dict[tuple[str, str], float]:
        rows = data.get("per_object") if isinstance(data.get("per_object"), list) else []
        out = {}
        for r in rows:
            if isinstance(r, dict) and _is_value(r.get(metric)) and r.get(metric) is not None:
                out[(str(r.get("sequence")), str(r.get("object")))] = float(r[metric])
        return out

    ta, tb = table(a), table(b)
    keys = sorted(set(ta) & set(tb))
    if not keys:
        return None
    diff = np.array([tb[k] - ta[k] for k in keys])
    seqs = sorted({k[0] for k in keys})
    index = {s: i for i, s in enumerate(seqs)}
    seq_of = np.array([index[k[0]] for k in keys])
    sums = np.bincount(seq_of, weights=diff, minlength=len(seqs))
    counts = np.bincount(seq_of, minlength=len(seqs)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(seqs), size=(int(n_boot), len(seqs)))
    boot = sums[draws].sum(1) / counts[draws].sum(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {
        "metric": metric,
        "objects": len(keys),
        "sequences": len(seqs),
        "mean": float(diff.mean()),
        "ci95": [float(lo), float(hi)],
        "b_better": int((diff > 0).sum()),
        "a_better": int((diff < 0).sum()),
        "ties": int((diff == 0).sum()),
    }


def _cell(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4f}"


def format_comparison(result: dict[str, Any]) -> str:
    """Markdown table of :func:`compare_runs`' result (plus a note when protocols differ)."""
    labels = result["labels"]
    two = len(labels) == 2
    header = ["metric", *labels] + ([f"delta ({labels[1]} - {labels[0]})"] if two else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for k in result["metrics"]:
        row = [k] + [_cell(v.get(k)) if k in v else "-" for v in result["values"]]
        if two:
            row.append(f"{result['delta'][k]:+.4f}" if k in result["delta"] else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.extend(f"- {label}: {path}" for label, path in zip(labels, result["paths"], strict=True))
    paired = result.get("paired")
    if paired:
        lines.append("")
        lines.append(
            f"paired over {paired['objects']} objects in {paired['sequences']} sequences: "
            f"{labels[1]} - {labels[0]} {paired['metric']} = {paired['mean']:+.4f} "
            f"(95 % interval, bootstrap over sequences: {paired['ci95'][0]:+.4f} .. {paired['ci95'][1]:+.4f}); "
            f"{labels[1]} better on {paired['b_better']}, {labels[0]} on {paired['a_better']}, ties {paired['ties']}"
        )
    protocols = {p for p in result["protocols"] if p}
    if len(protocols) > 1:
        lines.append("")
        lines.append("note: the runs come from different protocols: " + "; ".join(sorted(protocols)))
    return "\n".join(lines)
