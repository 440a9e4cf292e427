"""Checkpoints: safetensors weights plus a JSON metadata file; never pickle.

A checkpoint ``NAME`` is the pair ``NAME.safetensors`` + ``NAME.json``. The JSON holds
``format`` (must be :data:`FORMAT`), ``kind`` (``"backbone"``: a feature network, the
``model*.safetensors`` of a run; ``"train-state"``: the whole method and its optimiser, a run's
``last.safetensors``, only for resuming), ``arch`` (a registered backbone), ``method``, the
resolved config, metrics and provenance (git SHA, time). Loading checks all of it, so a missing, truncated
or foreign file gives a :class:`~corr_core.errors.CheckpointError` that says what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from corr_core.errors import CheckpointError

FORMAT = "corr-checkpoint/1"
#: ``kind`` of a run's ``last.*``: the whole method and optimiser, for resuming training only.
TRAIN_STATE = "train-state"


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, metadata)`` paths for a checkpoint given with or without its suffix."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Writes ``tensors`` (name -> tensor) and ``metadata`` atomically; returns the weights path.

    Both files are first written under temporary names and then renamed, so an interrupted save
    never leaves a half-written checkpoint in place of a good one.
    """
    weights, meta = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, **metadata}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    tmp_w, tmp_m = weights.with_suffix(".safetensors.tmp"), meta.with_suffix(".json.tmp")
    save_file(tensors, str(tmp_w), metadata={"format": FORMAT, "arch": str(metadata.get("arch", ""))})
    tmp_m.write_text(_metadata_text(metadata))
    tmp_w.replace(weights)
    tmp_m.replace(meta)
    return weights


def update_checkpoint_metadata(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Adds ``fields`` to a checkpoint's metadata (its ``.json``, rewritten atomically); returns it.

    Raises:
        CheckpointError: as :func:`load_checkpoint` for the metadata file.
    """
    _, meta = checkpoint_paths(path)
    metadata = {**_read_metadata(meta), **fields}
    tmp = meta.with_suffix(".json.tmp")
    tmp.write_text(_metadata_text(metadata))
    tmp.replace(meta)
    return metadata


def _metadata_text(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, indent=2, sort_keys=True, default=str)


def _read_metadata(meta: Path) -> dict[str, Any]:
    """A checkpoint's ``.json`` metadata, checked to be corr's (CheckpointError otherwise)."""
    if not meta.is_file():
        raise CheckpointError(
            f"checkpoint metadata not found: {meta} (a corr checkpoint is a .safetensors file "
            f"with a .json file of the same name beside it)"
        )
    try:
        metadata = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta}: unreadable checkpoint metadata ({exc})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise CheckpointError(f"{meta}: not a corr checkpoint (format {found!r}, expected {FORMAT!r})")
    return metadata


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Reads a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(tensors, metadata)`` with tensors on the CPU.

    Raises:
        CheckpointError: the files are missing, unreadable, truncated, or not a corr checkpoint.
    """
    weights, meta = checkpoint_paths(path)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights not found: {weights}")
    metadata = _read_metadata(meta)
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable or truncated safetensors file ({exc})") from exc
    return tensors, metadata


def load_module_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: str,
                      allow_missing: tuple[str, ...] = ()) -> None:
    """Loads the tensors under ``prefix`` into ``module``, strictly except that parameters whose
    names start with one of ``allow_missing`` may be absent (they keep their initial values).

    Raises:
        CheckpointError: when keys or shapes differ (a checkpoint for another architecture).
    """
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"{source}: holds no tensors under {prefix!r}; it is not a checkpoint for this model")
    if allow_missing:
        kept = {k: v for k, v in module.state_dict().items() if k.startswith(allow_missing) and k not in state}
        state = {**state, **kept}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(
            f"{source}: weights do not fit the model ({' '.join(first)}); it was written for another architecture"
        ) from exc


def check_feature_checkpoint(metadata: dict[str, Any], path: str | Path) -> None:
    """Refuses a checkpoint that is not a feature network, saying which file to use instead.

    Args:
        metadata: the checkpoint's metadata (from :func:`load_checkpoint`).
        path: the checkpoint, for the message.

    Raises:
        CheckpointError: a training state (``kind`` ``train-state``, a run's ``last.*``).
    """
    if metadata.get("kind") == TRAIN_STATE:
        weights = checkpoint_paths(path)[0]
        raise CheckpointError(
            f"{weights} is a training state (kind {TRAIN_STATE!r}: the whole method and its optimiser, for "
            f"resuming `corr train`), not a feature network; use {weights.with_name('model.safetensors')} (the "
            "feature network the run writes beside it) instead"
        )


def weights_sha256(path: str | Path) -> str:
    """The sha256 (hex) of a checkpoint's weights file.

    Raises:
        CheckpointError: the weights file is missing.
    """
    weights = checkpoint_paths(path)[0]
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights not found: {weights}")
    digest = hashlib.sha256()
    with weights.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
