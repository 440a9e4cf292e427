"""``corr train RECIPE --bag PATH``: train straight from rosbag2 recordings.

A robot records first and trains later; this turns each ``--bag`` into data of the recipe without
a separate ``corr bag export`` step:

* the temporal methods (FC, CorrFlow, MER, HVC, SFC) read frame folders: the bag's synchronised
  images are exported once per camera (:func:`corr_core.commands.bag.export_bag`) into
  ``<run>/cache/bags/<bag name>/<cam>/`` and each camera's folder joins ``data.folders`` (one
  sequence per camera). An export that finished is reused (its stamps file marks it complete); a
  partial one is redone.
* PCC reads bags itself (synchronised sets are its cross-view pairs): each bag joins
  ``data.bags`` as ``{path, topics}``.

Cameras are ``--topics cam=/topic ...`` when given, else every ``/<cam>/image_raw`` (or
``/compressed``) topic of the bag. The result is a list of ``key=value`` overrides, applied like the
command line's, so the run's saved ``config.yaml`` names the data it trained on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from corr_core.errors import ConfigError, DataError

__all__ = ["bag_overrides", "bag_topics"]

log = logging.getLogger("corr.train")


def bag_topics(path: Path, specs: list[str] | None) -> dict[str, str]:
    """``{cam: image topic}`` of a bag: ``specs`` (``cam=/topic``) when given, else detected.

    Raises:
        DataError: the bag is missing, unreadable, or has no ``/<cam>/image_raw`` topic;
        ConfigError: a malformed ``cam=/topic`` item, or a topic the bag does not hold.
    """
    from corr_core.commands.bag import parse_topics
    from corr_core.commands.bag_parts import detect_topics
    from corr_core.data.bag import bag_info

    if not path.exists():
        raise DataError(f"--bag {path}: no such bag folder or file")
    held = bag_info(path)["topics"]
    if not specs:
        return detect_topics(held)
    topics = parse_topics(specs)
    missing = [t for t in topics.values() if t not in held]
    if missing:
        raise ConfigError(f"--topics: {missing} not in bag {path} (its topics: {sorted(held)})")
    return topics


def _export(path: Path, topics: dict[str, str], cache: Path) -> list[str]:
    """Each camera's frame folder of the bag's export under ``cache`` (exported when not complete)."""
    from corr_core.commands.bag import export_bag

    name = path.name if path.is_dir() else path.stem
    out = cache / name
    stamps = out / f"{name}_stamps.csv"
    marker = out / "topics.json"
    if not (stamps.is_file() and marker.is_file() and json.loads(marker.read_text()) == topics):
        result = export_bag(path, topics, out, overwrite=True)
        if not result["sets"]:
            raise DataError(f"--bag {path}: no synchronised set of {sorted(topics)} in the bag")
        marker.write_text(json.dumps(topics))
        log.info("exported %d synchronised sets of %s from %s", result["sets"], sorted(topics), path)
    return [str(out / cam) for cam in topics]


def bag_overrides(cfg: dict[str, Any], bags: list[str], topic_specs: list[str] | None, cache: Path) -> list[str]:
    """``key=value`` overrides that add ``bags`` to the data of the resolved recipe ``cfg``.

    Args:
        cfg: the resolved training config (:func:`~corr_core.config.load_training_config`).
        bags: bag folders or storage files.
        topic_specs: ``cam=/topic`` items (None: detect ``/<cam>/image_raw`` topics).
        cache: where temporal methods' exports go (``<run>/cache/bags``).

    Raises:
        ConfigError: a recipe without ``data.folders`` (or ``data.bags`` for PCC);
        DataError: see :func:`bag_topics`; a bag without a synchronised set.
    """
    data = cfg.get("data") or {}
    paths = [Path(b).expanduser().resolve() for b in bags]
    if cfg.get("method") == "pcc":
        if "bags" not in data:
            raise ConfigError("--bag: this PCC recipe has no data.bags")
        entries = list(data.get("bags") or [])
        entries += [{"path": str(p), "topics": bag_topics(p, topic_specs)} for p in paths]
        return ["data.bags=" + json.dumps(entries)]
    if "folders" not in data:
        raise ConfigError(f"--bag: method {cfg.get('method')!r} reads no data.folders, so it cannot train from bags")
    existing = data.get("folders") or []
    folders = [existing] if isinstance(existing, str) else list(existing)
    for p in paths:
        folders += _export(p, bag_topics(p, topic_specs), cache)
    return ["data.folders=" + json.dumps(folders)]
