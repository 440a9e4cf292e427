"""Loading a semantic backbone for SFC without unpickling, and splitting a fused checkpoint.

A semantic branch can come from

* a corr checkpoint (``NAME.safetensors`` + ``NAME.json``, e.g. a ``sfc_semantic`` run's
  ``model.safetensors``) of the same architecture;
* a state dict in **torchvision's ResNet layout** (``conv1.weight``, ``bn1.*``, ``layer1.0...``,
  ``fc.*``), as ``.safetensors`` or as a ``torch.save`` file (``.pth``/``.pt``/``.tar``/``.ckpt``/
  ``.bin``) read with ``torch.load(weights_only=True)``, which refuses anything but tensors and
  plain containers (no code runs). A wrapping dict (``{"state_dict": ...}``) and the prefixes of
  MoCo/DDP checkpoints (``module.encoder_q.``, ``module.``, ``encoder_q.``, ``encoder.``,
  ``backbone.``) are understood; ``fc.*`` (and ``layer4.*`` for a backbone that stops at
  ``layer3``) are dropped.

Anything else (another layout, another depth, a missing or unreadable file) is a
:class:`~corr_core.errors.CheckpointError` naming the file and what does not fit.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from corr_core.errors import CheckpointError
from corr_core.io.checkpoint import (
    FORMAT,
    check_feature_checkpoint,
    checkpoint_paths,
    load_checkpoint,
    load_module_state,
    save_checkpoint,
)

TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt", ".bin")
PREFIXES = ("module.encoder_q.", "module.", "encoder_q.", "encoder.", "backbone.")


def _is_corr_checkpoint(path: Path) -> bool:
    weights, meta = checkpoint_paths(path)
    if not (weights.is_file() and meta.is_file()):
        return False
    try:
        import json

        return json.loads(meta.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"semantic checkpoint {path}: unreadable safetensors file ({exc})") from exc
    if path.suffix not in TORCH_SUFFIXES:
        raise CheckpointError(f"semantic checkpoint {path}: unknown file type {path.suffix!r} (expected .safetensors "
                              f"or a torch.save file: {', '.join(TORCH_SUFFIXES)})")
    try:
        obj: Any = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"semantic checkpoint {path}: holds more than tensors and plain containers; refused "
                              f"(it is never unpickled): {str(exc).splitlines()[0]}") from exc
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"semantic checkpoint {path}: unreadable ({type(exc).__name__}: {exc})") from exc
    for key in ("state_dict", "model", "online_backbone"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise CheckpointError(f"semantic checkpoint {path}: not a state dict of tensors (found {type(obj).__name__})")
    return obj


def torchvision_to_dense(state: dict[str, torch.Tensor], module: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """Renames a torchvision ResNet state dict to :class:`~corr_core.models.backbones.ResNetDense`'s.

    Args:
        state: the state dict (prefixes as in :data:`PREFIXES` allowed).
        module: the ``ResNetDense`` it is meant for (its keys and shapes are checked).
        source: the file, for messages.

    Raises:
        CheckpointError: not a torchvision ResNet layout, or keys/shapes that do not fit ``module``.
    """
    prefix = next((p for p in ("", *PREFIXES) if f"{p}conv1.weight" in state), None)
    if prefix is None:
        some = sorted(state)[:4]
        raise CheckpointError(f"semantic checkpoint {source}: not a torchvision ResNet state dict (no conv1.weight; "
                              f"keys such as {some}); expected conv1.*, bn1.*, layer1.* ... fc.*")
    stages = len(module.stages)
    out, ignored = {}, []
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        k = key[len(prefix):]
        if k.startswith("conv1."):
            out["stem.0." + k[6:]] = value
        elif k.startswith("bn1."):
            out["stem.1." + k[4:]] = value
        elif k.startswith("layer") and k[5:6].isdigit():
            i = int(k[5])
            if i <= stages:
                out[f"stages.{i - 1}." + k[7:]] = value
            else:
                ignored.append(k)
        elif k.startswith("fc."):
            ignored.append(k)
        else:
            raise CheckpointError(f"semantic checkpoint {source}: unexpected key {key!r} for a torchvision ResNet")
    mine = module.state_dict()
    extra = sorted(k for k in out if k not in mine)
    missing = sorted(k for k in mine if k not in out and not k.startswith("normalize.")
                     and not k.endswith("num_batches_tracked"))
    if extra or missing:
        raise CheckpointError(
            f"semantic checkpoint {source}: its ResNet does not fit the {type(module).__name__} with "
            f"{module.out_channels} output channels (another depth?): missing {missing[:3]}{'...' if len(missing) > 3 else ''}"
            f", unexpected {extra[:3]}{'...' if len(extra) > 3 else ''}")
    for k, v in out.items():
        if tuple(v.shape) != tuple(mine[k].shape):
            raise CheckpointError(f"semantic checkpoint {source}: {k} has shape {tuple(v.shape)}, the model "
                                  f"needs {tuple(mine[k].shape)} (another architecture)")
    for k in mine:
        if k not in out:
            out[k] = mine[k]  # the normalisation buffers, missing num_batches_tracked
    return out


def load_semantic_weights(module: nn.Module, path: str | Path, arch: str) -> str:
    """Loads a semantic backbone's weights into ``module`` (a registered ``arch``).

    Args:
        module: the backbone.
        path: a corr checkpoint, or a torchvision-layout state dict (see module docstring).
        arch: the registered name of ``module`` (a corr checkpoint must be of it).

    Returns:
        A description of what was loaded, for the log.

    Raises:
        CheckpointError: a missing, unreadable or refused file, or weights of another layout or
            architecture (the message names the file).
    """
    path = Path(path).expanduser()
    if _is_corr_checkpoint(path):
        tensors, meta = load_checkpoint(path)
        check_feature_checkpoint(meta, path)
        if meta.get("arch") != arch:
            raise CheckpointError(f"semantic checkpoint {path}: architecture {meta.get('arch')!r}, the semantic "
                                  f"branch is {arch!r}")
        load_module_state(module, tensors, "backbone.", str(path))
        return f"corr checkpoint {path} ({meta.get('method', '?')})"
    if not path.is_file():
        raise CheckpointError(f"semantic checkpoint not found: {path}")
    module.load_state_dict(torchvision_to_dense(_read_state(path), module, str(path)), strict=True)
    return f"torchvision-layout state dict {path}"


def split_fused(checkpoint: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Writes the two branches of a fused SFC checkpoint as separate feature checkpoints.

    ``out_dir/semantic.*`` and ``out_dir/fine_grained.*`` load in ``corr eval`` like any other
    checkpoint: the ablation "FC alone" evaluates ``fine_grained`` of the same run.

    Raises:
        CheckpointError: not a fused SFC checkpoint.
    """
    from corr_core.models.registry import SFC_FUSIONS

    tensors, meta = load_checkpoint(checkpoint)
    arch = meta.get("arch")
    if arch not in SFC_FUSIONS:
        raise CheckpointError(f"{checkpoint}: architecture {arch!r} is not a fused SFC network ({sorted(SFC_FUSIONS)})")
    out: dict[str, Path] = {}
    for branch, name in zip(("semantic", "fine_grained"), SFC_FUSIONS[arch], strict=True):
        prefix = f"backbone.{branch}."
        part = {"backbone." + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        info = {**meta, "arch": name, "branch": branch, "fused_from": str(checkpoint)}
        out[branch] = save_checkpoint(Path(out_dir) / branch, part, info)
    return out
