"""Where exported networks are cached, and the ONNX export of a network cached by its weights.

``backend: onnxruntime`` (or ``tensorrt``) on a corr checkpoint (or a random initialisation) needs
the network as ONNX: :func:`cached_onnx` exports it once into the cache, under a key made of the
sha256 of its weights, the ONNX format, the opset and the torch version, and reuses the file from
then on (it is never exported again while the file is there). Concurrent processes (two nodes
starting together) take a file lock, so only one of them exports.

The cache folder is ``$CORR_CACHE_DIR``, else ``$XDG_CACHE_HOME/corr``, else ``~/.cache/corr``:
``onnx/<key>.onnx`` and ``tensorrt/<key>.engine`` (:mod:`corr_core.export.tensorrt`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from corr_core.io.onnx_format import ONNX_FORMAT

__all__ = ["CACHE_ENV", "cache_root", "cached_onnx", "file_lock", "file_sha256", "onnx_cache_key", "state_sha256"]

#: Environment variable naming the cache folder.
CACHE_ENV = "CORR_CACHE_DIR"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: ``cache_dir`` if given, else ``$CORR_CACHE_DIR``, ``$XDG_CACHE_HOME/corr``,
    ``~/.cache/corr`` (not created here)."""
    if cache_dir not in (None, ""):
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "corr"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_sha256(model: nn.Module) -> str:
    """The sha256 of a network's parameters and buffers (names, dtypes, shapes and values), hex."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created) for the ``with`` block (POSIX ``flock``)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def onnx_cache_key(weights_sha256: str, opset: int) -> str:
    """The cache key of an ONNX export (hex, 24 characters)."""
    parts = {"weights_sha256": weights_sha256, "format": ONNX_FORMAT, "opset": int(opset), "batch": "dynamic",
             "torch": torch.__version__.split("+")[0]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def cached_onnx(model: nn.Module, metadata: dict[str, Any], cache_dir: str | Path | None = None,
                size: tuple[int, int] = (240, 320), opset: int = 17, log: Any = None) -> Path:
    """The ONNX export of ``model`` from the cache, exported (and parity-checked) on first use.

    Args:
        model: the feature network.
        metadata: its metadata (``arch``, ``method``, ``source``, ``source_sha256``), written into the file.
        cache_dir: the cache folder (default :func:`cache_root`).
        size: trace and check size of a new export.
        opset: ONNX opset.
        log: called with a line when a new export is made.

    Raises:
        ExportError: the export failed its parity check.
    """
    from corr_core.export.onnx import export_onnx

    key = onnx_cache_key(state_sha256(model), opset)
    path = cache_root(cache_dir) / "onnx" / f"{key}.onnx"
    if path.is_file():
        return path
    with file_lock(path.with_suffix(".lock")):
        if not path.is_file():  # another process may have written it while we waited
            if log is not None:
                log(f"exporting the network to ONNX once, into the cache: {path}")
            export_onnx(model, path, metadata=metadata, size=size, opset=opset)
    return path
