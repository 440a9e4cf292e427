"""Timing of one CRW propagation step (``corr bench propagate`` wires this up).

Random L2-normalised features stand in for a backbone's: the cost of propagation does not depend
on what the features are, only on their size, the context length, k and the radius.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from corr_core.errors import ConfigError
from corr_core.propagation.crw import METHODS, PropagationConfig, propagate_dense, propagate_local


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_propagation(
    height: int = 480,
    width: int = 854,
    channels: int = 256,
    cfg: PropagationConfig | None = None,
    methods: tuple[str, ...] = METHODS,
    objects: int = 3,
    repeats: int = 3,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    dense_query_chunk: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Times :func:`propagate_local` and/or :func:`propagate_dense` on one target frame.

    Args:
        height, width: frame size in pixels; the feature map is ``ceil(size / cfg.feature_stride)``.
        channels: feature channels ``C``.
        cfg: propagation settings (default: SFC/CRW DAVIS, k=10, m=20, r'=12). The context holds
            the reference frame plus ``cfg.context`` frames.
        methods: which implementations to time, from ``("local", "dense")``.
        objects: objects besides background (``K = objects + 1`` label channels).
        repeats: timed runs per method (the result reports the median and the minimum).
        warmup: untimed runs per method first.
        device: where to run; the features are created there.
        dense_query_chunk: rows per block for the dense baseline (None: the whole ``hw x N*hw``
            matrix at once, about ``4 * hw * N * hw`` bytes).
        seed: seed of the random features and labels.

    Returns:
        A JSON-serialisable dict: sizes and settings, and per method ``seconds_median``,
        ``seconds_min``, ``fps`` (1 / median) and, on CUDA, ``peak_mib``; with both methods also
        ``max_abs_diff`` between their outputs.

    Raises:
        ConfigError: on an unknown method or a non-positive size.
    """
    cfg = PropagationConfig() if cfg is None else cfg
    cfg.validate()
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(
            f"bench_propagation: methods must be a non-empty subset of {METHODS}, got {methods}"
        )
    for name, value in (("height", height), ("width", width), ("channels", channels), ("repeats", repeats)):
        if value < 1:
            raise ConfigError(f"bench_propagation: {name} must be >= 1, got {value}")
    device = torch.device(device)
    h, w = -(-height // cfg.feature_stride), -(-width // cfg.feature_stride)
    n = 1 + cfg.context
    gen = torch.Generator(device="cpu").manual_seed(seed)
    query = F.normalize(torch.randn(channels, h, w, generator=gen), dim=0).to(device)
    ctx = F.normalize(torch.randn(n, channels, h, w, generator=gen), dim=1).to(device)
    labels = torch.softmax(4 * torch.randn(n, objects + 1, h, w, generator=gen), dim=1).to(device)
    if cfg.torch_dtype is not None:
        query, ctx = query.to(cfg.torch_dtype), ctx.to(cfg.torch_dtype)

    result: dict[str, Any] = {
        "device": str(device),
        "frame": [height, width],
        "features": [channels, h, w],
        "context_frames": n,
        "topk": cfg.topk,
        "radius": cfg.radius,
        "temperature": cfg.temperature,
        "dtype": cfg.dtype or str(query.dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
    }
    runners = {
        "dense": lambda: propagate_dense(query, ctx, labels, cfg, query_chunk=dense_query_chunk),
        "local": lambda: propagate_local(query, ctx, labels, replace(cfg, method="local")),
    }
    outputs = {}
    for method in methods:
        run = runners[method]
        with torch.inference_mode():
            for _ in range(warmup):
                run()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times = []
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                out = run()
                _sync(device)
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        entry: dict[str, Any] = {"seconds_median": median, "seconds_min": min(times), "fps": 1.0 / median}
        if device.type == "cuda":
            entry["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        result[method] = entry
        outputs[method] = out
    if len(outputs) == 2:
        result["max_abs_diff"] = (outputs["local"] - outputs["dense"]).abs().max().item()
    return result


if __name__ == "__main__":  # python -m corr_core.propagation.bench [device]
    import json
    import sys

    print(json.dumps(bench_propagation(device=sys.argv[1] if len(sys.argv) > 1 else "cpu"), indent=2))
