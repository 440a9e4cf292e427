"""Native TensorRT engines built from corr's ONNX export, cached under a key that says what they fit.

An engine is only valid for the ONNX graph, the TensorRT version and the GPU (compute capability)
it was built with, and for its precision and input shape profile. :func:`engine_key` hashes exactly
these five into the cache key, so an engine is never used where it does not fit and never built
twice for the same fit: :func:`ensure_engine` returns the cached engine, builds it when absent, and
rebuilds it only when asked (``rebuild=True``, ``corr export tensorrt --rebuild``).

Files (cache folder of :mod:`corr_core.export.cache`, or any ``--out``)::

    tensorrt/<key>.engine   the serialised engine (TensorRT's plan)
    tensorrt/<key>.json     what it was built from: the five key parts, the network's metadata
                            (feature_stride, channels, arch, source), the build time; read by
                            corr_core.runtime.tensorrt (its fields are the contract, ENGINE_FORMAT)

Precisions: ``fp32``, ``fp16`` (TensorRT may keep layers in fp32 where fp16 would lose accuracy),
``bf16`` and ``int8``, calibrated on frames (e.g. from a bag, ``corr export tensorrt
--calibration-bag``) with TensorRT's entropy calibrator; the calibration cache is kept beside the
engine. The shape profile is ``min:opt:max`` of the input ``(B, 3, H, W)``: frames (scaled by
``input_scale``) and batches (cameras of a set) must fit in it.

The code is written against TensorRT's Python API (8.6 and 10.x: ``build_serialized_network``,
tensor-name I/O); it runs where TensorRT is installed (x86 GPU hosts, Jetson). The key, the
profile and the metadata need no TensorRT and are tested everywhere.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.util
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corr_core.errors import ConfigError, ExportError
from corr_core.io.onnx_format import INPUT_NAME, ONNX_FORMAT, OUTPUT_NAME

__all__ = [
    "DEFAULT_PROFILE",
    "ENGINE_FORMAT",
    "ENGINE_SUFFIX",
    "PRECISIONS",
    "EngineSpec",
    "ShapeProfile",
    "build_engine",
    "engine_key",
    "engine_paths",
    "ensure_engine",
    "host_tensorrt",
]

#: ``format`` of an engine's JSON (:mod:`corr_core.runtime.tensorrt` checks it).
ENGINE_FORMAT = "corr-trt/1"
ENGINE_SUFFIX = ".engine"
PRECISIONS = ("fp32", "fp16", "bf16", "int8")

Shape = tuple[int, int, int, int]


@dataclass(frozen=True)
class ShapeProfile:
    """The input shapes an engine takes: ``(B, 3, H, W)`` from ``min`` to ``max``, tuned for ``opt``."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        for name in ("min", "opt", "max"):
            shape = getattr(self, name)
            if len(shape) != 4 or shape[1] != 3 or any(int(v) < 1 for v in shape):
                raise ConfigError(f"shape profile: {name} must be Bx3xHxW with positive sizes, got {shape}")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max, strict=True)):
            raise ConfigError(f"shape profile: need min <= opt <= max in every axis, got {self.text()}")

    def covers(self, shape: Iterable[int]) -> bool:
        """Whether an input of ``shape`` fits."""
        shape = tuple(int(v) for v in shape)
        return len(shape) == 4 and all(a <= s <= b for a, s, b in zip(self.min, shape, self.max, strict=True))

    def text(self) -> str:
        """``"1x3x64x64:2x3x240x320:4x3x1088x1920"``."""
        return ":".join("x".join(str(int(v)) for v in s) for s in (self.min, self.opt, self.max))

    @classmethod
    def parse(cls, text: str) -> ShapeProfile:
        """The profile written by :meth:`text` (``MIN:OPT:MAX``, each ``BxCxHxW``).

        Raises:
            ConfigError: anything else.
        """
        try:
            shapes = [tuple(int(v) for v in part.lower().split("x")) for part in text.split(":")]
        except ValueError:
            shapes = []
        if len(shapes) != 3 or any(len(s) != 4 for s in shapes):
            raise ConfigError(f"shape profile must look like 1x3x64x64:2x3x240x320:4x3x1088x1920 "
                              f"(MIN:OPT:MAX, each BxCxHxW), got {text!r}")
        return cls(*shapes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


#: Up to four cameras, 64x64 to 1088x1920 network input (480p at input_scale 2 fits), tuned for
#: two cameras at 240x320.
DEFAULT_PROFILE = ShapeProfile((1, 3, 64, 64), (2, 3, 240, 320), (4, 3, 1088, 1920))


def engine_key(onnx_sha256: str, tensorrt_version: str, compute_capability: str, precision: str,
               profile: ShapeProfile) -> str:
    """The cache key of an engine (hex, 24 characters): a hash of the ONNX file's sha256, the TensorRT
    version, the GPU's compute capability (``"8.6"``), the precision and the shape profile."""
    if precision not in PRECISIONS:
        raise ConfigError(f"TensorRT precision must be one of {list(PRECISIONS)}, got {precision!r}")
    parts = {"onnx_sha256": onnx_sha256, "tensorrt": tensorrt_version, "compute_capability": compute_capability,
             "precision": precision, "profile": profile.text(), "format": ENGINE_FORMAT}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class EngineSpec:
    """What an engine is built for (the parts of its key)."""

    onnx_sha256: str
    tensorrt_version: str
    compute_capability: str
    precision: str
    profile: ShapeProfile

    def key(self) -> str:
        return engine_key(self.onnx_sha256, self.tensorrt_version, self.compute_capability, self.precision,
                          self.profile)


def engine_paths(cache_dir: str | Path, key: str) -> tuple[Path, Path]:
    """``(engine, its JSON)`` of ``key`` in a cache folder."""
    folder = Path(cache_dir) / "tensorrt"
    return folder / f"{key}{ENGINE_SUFFIX}", folder / f"{key}.json"


def host_tensorrt(device: str = "cuda") -> tuple[str, str]:
    """``(TensorRT version, compute capability "major.minor")`` of this host's ``device``.

    Raises:
        ExportError: the tensorrt package or a CUDA device is missing.
    """
    if importlib.util.find_spec("tensorrt") is None:
        raise ExportError("TensorRT engines need the tensorrt Python package, which is not installed on this host "
                          "(pip install tensorrt on an x86 GPU host; JetPack on a Jetson)")
    import tensorrt as trt
    import torch

    if not torch.cuda.is_available():
        raise ExportError(f"TensorRT {trt.__version__} is installed but this host has no CUDA device")
    major, minor = torch.cuda.get_device_capability(torch.device(device))
    return str(trt.__version__), f"{major}.{minor}"


def _onnx_metadata(onnx_path: Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("corr_format") != ONNX_FORMAT:
        raise ExportError(f"{onnx_path}: not an ONNX model exported by corr (corr_format {meta.get('corr_format')!r}); "
                          "export it with `corr export onnx`")
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value") and batch.dim_value == 1:
        meta["_batch_fixed"] = "1"
    return meta


def _calibrator(batches: list[np.ndarray], cache: Path) -> Any:
    """TensorRT's entropy calibrator over ``(B, 3, H, W)`` float32 batches (on the GPU through torch)."""
    import tensorrt as trt
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.device_input: torch.Tensor | None = None

        def get_batch_size(self) -> int:
            return int(batches[0].shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= len(batches):
                return None
            self.device_input = torch.from_numpy(np.ascontiguousarray(batches[self.index], np.float32)).cuda()
            self.index += 1
            return [int(self.device_input.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            cache.write_bytes(bytes(data))

    return Calibrator()


def build_engine(onnx_path: str | Path, engine_path: str | Path, precision: str = "fp16",
                 profile: ShapeProfile = DEFAULT_PROFILE, calibration: list[np.ndarray] | None = None,
                 workspace_gib: float = 4.0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Builds a TensorRT engine from a corr ONNX file and writes it with its JSON.

    Args:
        onnx_path: ``.onnx`` from ``corr export onnx`` (batch axis dynamic for batches above 1).
        engine_path: the ``.engine`` to write (its ``.json`` goes beside it).
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        profile: input shapes the engine takes.
        calibration: int8 only: ``(B, 3, H, W)`` float32 batches of frames in [0, 1], B = ``profile.opt[0]``.
        workspace_gib: TensorRT's workspace memory limit.
        log: called with progress lines.

    Returns:
        The engine's JSON (also written).

    Raises:
        ExportError: no TensorRT or CUDA, a foreign ONNX file, a parse or build failure, int8
            without calibration frames.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    version, capability = host_tensorrt()
    import tensorrt as trt

    from corr_core.export.cache import file_sha256

    if precision not in PRECISIONS:
        raise ConfigError(f"TensorRT precision must be one of {list(PRECISIONS)}, got {precision!r}")
    meta = _onnx_metadata(onnx_path)
    if meta.pop("_batch_fixed", None) and profile.max[0] > 1:
        raise ExportError(f"{onnx_path} has a fixed batch of 1 (exported before batches were dynamic): export it "
                          f"again with `corr export onnx`, or use a profile with batch 1 (got {profile.text()})")
    if precision == "int8" and not calibration:
        raise ExportError("an int8 engine needs calibration frames (corr export tensorrt --precision int8 "
                          "--calibration-bag BAG)")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if int(version.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT {version} cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    elif precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)  # layers without int8 kernels fall back to fp16
        config.int8_calibrator = _calibrator(calibration, engine_path.with_suffix(".calib"))
        config.set_calibration_profile(opt_profile)
    if log is not None:
        log(f"building a TensorRT {version} {precision} engine for compute capability {capability}, "
            f"profile {profile.text()}, from {onnx_path} (this takes minutes)")
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT {version} failed to build a {precision} engine from {onnx_path} (see its log)")
    build_s = time.perf_counter() - t0
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(bytes(plan))
    info = {
        "format": ENGINE_FORMAT,
        "key": engine_key(file_sha256(onnx_path), version, capability, precision, profile),
        "onnx": str(onnx_path),
        "onnx_sha256": file_sha256(onnx_path),
        "tensorrt": version,
        "compute_capability": capability,
        "precision": precision,
        "profile": profile.as_dict(),
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "feature_stride": int(meta.get("feature_stride", 8)),
        "channels": int(meta.get("channels", 0) or 0),
        "arch": meta.get("arch", ""),
        "source": meta.get("source", ""),
        "source_sha256": meta.get("source_sha256", ""),
        "calibration_batches": len(calibration or []),
        "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_s": round(build_s, 1),
    }
    tmp.replace(engine_path)
    engine_path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    if log is not None:
        log(f"wrote {engine_path} in {build_s:.0f} s")
    return info


def ensure_engine(onnx_path: str | Path, precision: str = "fp16", profile: ShapeProfile = DEFAULT_PROFILE,
                  device: str = "cuda", cache_dir: str | Path | None = None, rebuild: bool = False,
                  calibration: Callable[[], list[np.ndarray]] | None = None,
                  log: Callable[[str], None] | None = None) -> Path:
    """The cached engine of ``onnx_path`` for this host, precision and profile; built when absent or
    when ``rebuild``.

    Args:
        onnx_path: the corr ONNX file.
        precision: engine precision.
        profile: input shape profile.
        device: the CUDA device (its compute capability is part of the key).
        cache_dir: cache folder (default :func:`corr_core.export.cache.cache_root`).
        rebuild: build again even when the cache holds the engine.
        calibration: int8 only: returns the calibration batches (called only when building).
        log: called with progress lines.

    Raises:
        ExportError: as :func:`build_engine`; an int8 engine that is not cached and no calibration.
    """
    from corr_core.export.cache import cache_root, file_lock, file_sha256

    version, capability = host_tensorrt(device)
    spec = EngineSpec(file_sha256(onnx_path), version, capability, precision, profile)
    engine, _ = engine_paths(cache_root(cache_dir), spec.key())
    if engine.is_file() and not rebuild:
        return engine
    with file_lock(engine.with_suffix(".lock")):
        if engine.is_file() and not rebuild:
            return engine
        if precision == "int8" and calibration is None:
            raise ExportError(f"no cached int8 engine for {onnx_path} on TensorRT {version}, compute capability "
                              f"{capability}, profile {profile.text()}: build it with `corr export tensorrt "
                              "--precision int8 --calibration-bag BAG`")
        build_engine(onnx_path, engine, precision, profile, calibration() if calibration else None, log=log)
    return engine
