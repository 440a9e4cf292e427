"""Timing and peak memory of label propagation (``corr bench propagate`` runs these).

Random L2-normalised features stand in for a backbone's: the cost of propagation does not depend
on what the features are, only on their size, the context length, k and the radius.

Three kinds of measurement, each of one implementation (``"local"`` or ``"dense"``):

* ``"propagation"``: one call of :func:`~corr_core.propagation.crw.propagate_local` or
  :func:`~corr_core.propagation.crw.propagate_dense` on a full context (reference + ``m``
  frames), the functional API (the local one lays the context out on every call);
* ``"stream"``: :meth:`Tracker.step_features <corr_core.propagation.tracker.Tracker.step_features>`
  per frame on a stream of feature maps: what a robot pays for propagation alone (the local
  tracker writes only the new frame into its memory; the dense one stacks the context);
* ``"features"``: :meth:`Tracker.step <corr_core.propagation.tracker.Tracker.step>` per frame with
  a backbone (default ResNet-18 at stride 8, random initialisation: the timing does not depend on
  the weights): features + propagation + decoding to frame size.

:func:`measure` runs one configuration in the current process and reports its times and its peak
memory above the baseline taken after imports and inputs: on CPU from
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (meaningful when the process runs this one
configuration only, hence ``python -m corr_core.propagation.bench SPEC.json RESULT.json``), on CUDA
from ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import gc
import json
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from corr_core.errors import ConfigError
from corr_core.propagation.crw import METHODS, PropagationConfig, propagate_dense, propagate_local

KINDS = ("propagation", "stream", "features")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_peak_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _random_features(
    n: int, c: int, h: int, w: int, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``(n, c, h, w)`` unit vectors, made one frame at a time (no large temporaries)."""
    out = torch.empty(n, c, h, w, device=device)
    for i in range(n):
        out[i] = F.normalize(torch.randn(c, h, w, generator=gen), dim=0).to(device)
    return out


def _random_masks(height: int, width: int, objects: int, gen: torch.Generator) -> np.ndarray:
    """An ``(H, W)`` uint8 label map with ``objects`` rectangles (ids 1..objects)."""
    masks = np.zeros((height, width), np.uint8)
    for oid in range(1, objects + 1):
        y, x = (int(v) for v in torch.randint(0, max(1, height // 2), (2,), generator=gen))
        masks[y : y + max(1, height // 3), x : x + max(1, width // 3)] = oid
    return masks


def _timed(
    run: Callable[[], Any], device: torch.device, warmup: int, repeats: int
) -> tuple[list[float], Any]:
    out = None
    for _ in range(warmup):
        out = run()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        out = run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times, out


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Times one configuration in this process and reports its peak memory.

    Args:
        spec: ``kind`` (one of :data:`KINDS`), ``method`` (``"local"``/``"dense"``), ``device``,
            ``frame`` ``[H, W]``, and optionally ``channels`` (256; features of the
            ``propagation``/``stream`` kinds), ``context`` (20), ``topk`` (10), ``radius`` (12),
            ``temperature`` (0.05), ``feature_stride`` (8), ``objects`` (3), ``repeats`` (3),
            ``warmup`` (1), ``seed`` (0), ``threads`` (0: torch's default), ``backbone``
            (``"resnet18_s8"``, kind ``features``), ``output`` (a ``.npy`` path: the last soft
            labels of kind ``propagation`` are saved there).

    Returns:
        A JSON-serialisable dict: ``seconds`` (each timed run), ``seconds_median``,
        ``seconds_min``, ``fps`` (1 / median), ``peak_mib`` (peak memory above the baseline),
        ``baseline_mib``, ``memory`` (how it was measured), ``threads``; kind ``features`` also
        ``backbone_seconds_median`` (the model alone).

    Raises:
        ConfigError: unknown kind/method, or sizes < 1.
    """
    kind, method = spec.get("kind"), spec.get("method")
    if kind not in KINDS:
        raise ConfigError(f"bench: kind must be one of {KINDS}, got {kind!r}")
    if method not in METHODS:
        raise ConfigError(f"bench: method must be one of {METHODS}, got {method!r}")
    height, width = (int(v) for v in spec["frame"])
    channels, objects = int(spec.get("channels", 256)), int(spec.get("objects", 3))
    repeats, warmup = int(spec.get("repeats", 3)), int(spec.get("warmup", 1))
    for name, value in (("height", height), ("width", width), ("channels", channels), ("repeats", repeats)):
        if value < 1:
            raise ConfigError(f"bench: {name} must be >= 1, got {value}")
    if int(spec.get("threads", 0)) > 0:
        torch.set_num_threads(int(spec["threads"]))
    device = torch.device(spec.get("device", "cpu"))
    cfg = PropagationConfig(
        topk=int(spec.get("topk", 10)),
        context=int(spec.get("context", 20)),
        radius=float(spec.get("radius", 12.0)),
        temperature=float(spec.get("temperature", 0.05)),
        feature_stride=int(spec.get("feature_stride", 8)),
        method=method,
    )
    stride = cfg.feature_stride
    h, w = -(-height // stride), -(-width // stride)
    gen = torch.Generator().manual_seed(int(spec.get("seed", 0)))
    extra: dict[str, Any] = {}

    with torch.inference_mode():
        if kind == "propagation":
            n = 1 + cfg.context
            query = _random_features(1, channels, h, w, gen, device)[0]
            ctx = _random_features(n, channels, h, w, gen, device)
            labels = torch.softmax(4 * torch.randn(n, objects + 1, h, w, generator=gen), dim=1).to(device)
            fn = propagate_local if method == "local" else propagate_dense

            def run() -> torch.Tensor:
                return fn(query, ctx, labels, cfg)

        elif kind == "stream":
            from corr_core.propagation.tracker import Tracker

            pool = _random_features(3, channels, h, w, gen, device)
            masks = _random_masks(height, width, objects, gen)
            tracker = Tracker.from_features(cfg, device=device)
            counter = iter(range(1 << 62))

            def run() -> np.ndarray:
                return tracker.step_features(pool[1 + next(counter) % 2], image_size=(height, width))

        else:
            from corr_core.models import build_backbone
            from corr_core.propagation.tracker import Tracker

            torch.manual_seed(int(spec.get("seed", 0)))
            model = build_backbone(str(spec.get("backbone", "resnet18_s8")))
            frames = [
                torch.randint(0, 256, (height, width, 3), generator=gen, dtype=torch.uint8).numpy()
                for _ in range(3)
            ]
            masks = _random_masks(height, width, objects, gen)
            tracker = Tracker(model, cfg, device=device)
            counter = iter(range(1 << 62))

            def run() -> np.ndarray:
                return tracker.step(frames[1 + next(counter) % 2])

        gc.collect()
        _sync(device)
        baseline = _rss_peak_mib()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base_alloc = torch.cuda.memory_allocated(device)
        if kind == "stream":
            tracker.step_features(pool[0], masks)  # the annotated frame: memories are allocated here
        elif kind == "features":
            tracker.step(frames[0], masks)
        times, out = _timed(run, device, warmup, repeats)
        if device.type == "cuda":
            peak = (torch.cuda.max_memory_allocated(device) - base_alloc) / 2**20
            memory = "torch.cuda.max_memory_allocated above the allocation after inputs"
        else:
            peak = _rss_peak_mib() - baseline
            memory = "ru_maxrss above its value after imports and inputs (fresh process)"
        if kind == "propagation" and spec.get("output"):
            np.save(spec["output"], out.float().cpu().numpy(), allow_pickle=False)
        if kind == "features":
            x = torch.from_numpy(frames[0]).to(device).permute(2, 0, 1)[None].float().div_(255.0)
            model_times, _ = _timed(lambda: tracker.model(x), device, 1, repeats)
            extra["backbone_seconds_median"] = statistics.median(model_times)

    median = statistics.median(times)
    return {
        "seconds": times,
        "seconds_median": median,
        "seconds_min": min(times),
        "fps": 1.0 / median if median > 0 else math.inf,
        "peak_mib": peak,
        "baseline_mib": baseline,
        "memory": memory,
        "threads": torch.get_num_threads(),
        **extra,
    }


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
    """Times :func:`propagate_local` and/or :func:`propagate_dense` on one target frame, in process.

    A quick check without subprocesses (no peak memory on CPU); ``corr bench propagate`` is the
    full benchmark.

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
        ``max_abs_diff`` between their outputs and ``speedup`` (dense median / local median).

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
    query = _random_features(1, channels, h, w, gen, device)[0]
    ctx = _random_features(n, channels, h, w, gen, device)
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
        with torch.inference_mode():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times, out = _timed(runners[method], device, warmup, repeats)
        median = statistics.median(times)
        entry: dict[str, Any] = {"seconds_median": median, "seconds_min": min(times), "fps": 1.0 / median}
        if device.type == "cuda":
            entry["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        result[method] = entry
        outputs[method] = out
    if len(outputs) == 2:
        result["max_abs_diff"] = (outputs["local"] - outputs["dense"]).abs().max().item()
        result["speedup"] = result["dense"]["seconds_median"] / result["local"]["seconds_median"]
    return result


def _main(argv: list[str]) -> int:
    """``python -m corr_core.propagation.bench SPEC.json RESULT.json`` (one configuration per
    process, for ``corr bench propagate``), or ``... [DEVICE]`` for a quick in-process check."""
    if len(argv) == 2 and argv[0].endswith(".json"):
        spec = json.loads(Path(argv[0]).read_text())
        Path(argv[1]).write_text(json.dumps(measure(spec), indent=2))
        return 0
    print(json.dumps(bench_propagation(device=argv[0] if argv else "cpu"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
