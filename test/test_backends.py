"""Inference backends: torch, onnxruntime and tensorrt behind one choice (corr_core.runtime.backends).

Here (no GPU, no TensorRT) the CPU backends run for real and an absent backend must be a clear
error; the CUDA and TensorRT tests are marked ``gpu`` / ``trt`` and skip cleanly where those are
missing. The TensorRT cache key and engine description need no TensorRT and are tested here.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from corr_core.api import load_backend_model
from corr_core.errors import CheckpointError, ConfigError, ExportError
from corr_core.runtime.backends import BackendUnavailableError, check_backend, resolve_backend

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_CUDA = torch.cuda.is_available()


def _ort_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


# ---------------------------------------------------------------------------------------- choice


def test_backend_options_are_defined_once_for_the_cli_and_the_node():
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed")
    import argparse

    from corr_core.options import BACKEND_OPTIONS, add_backend_args, backend_choice
    from corr_ros.tracking.parameters import PARAMS

    specs = {s.name: s for s in PARAMS}
    for opt in BACKEND_OPTIONS:
        spec = specs[opt.name]
        assert (spec.default, spec.choices, spec.live) == (opt.default, opt.choices, False), opt.name
    assert set(BACKEND_OPTIONS[0].choices) == {"auto", "torch", "onnxruntime", "tensorrt"}
    parser = argparse.ArgumentParser()
    add_backend_args(parser)
    choice = backend_choice(parser.parse_args(["--backend", "onnxruntime", "--precision", "fp16"]))
    assert (choice.backend, choice.precision) == ("onnxruntime", "fp16")
    with pytest.raises(SystemExit):
        parser.parse_args(["--backend", "openvino"])


def test_auto_picks_the_backend_by_file_and_a_file_is_not_run_on_the_wrong_backend():
    assert resolve_backend("auto", "model.onnx") == "onnxruntime"
    assert resolve_backend("auto", "model.engine") == "tensorrt"
    assert resolve_backend("auto", "runs/fc/model") == "torch"
    assert resolve_backend("auto", None) == "torch"
    assert resolve_backend("onnxruntime", "runs/fc/model") == "onnxruntime"
    with pytest.raises(ConfigError, match="ONNX file"):
        resolve_backend("torch", "model.onnx")
    with pytest.raises(ConfigError, match="TensorRT engine"):
        resolve_backend("onnxruntime", "model.engine")
    with pytest.raises(ConfigError, match="openvino"):
        resolve_backend("openvino", None)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_absent_tensorrt_is_an_error_naming_it_never_a_fallback():
    with pytest.raises(BackendUnavailableError, match="backend tensorrt: the tensorrt Python package is not"):
        check_backend("tensorrt", "fp16", "cuda")
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        load_backend_model(None, "tensorrt", "fp16", device="cuda", random_init_seed=0)


@pytest.mark.skipif(HAS_CUDA, reason="this host has a CUDA device")
def test_absent_cuda_is_an_error_naming_it():
    for backend in ("torch", "onnxruntime"):
        with pytest.raises(BackendUnavailableError, match=r"(no CUDA device|no CUDAExecutionProvider)"):
            check_backend(backend, "fp32", "cuda")
    with pytest.raises(BackendUnavailableError, match="cuda:1"):
        load_backend_model(None, "torch", device="cuda:1", random_init_seed=0)


def test_precisions_a_backend_does_not_run_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match="int8 needs backend tensorrt"):
        check_backend("torch", "int8", "cpu")
    with pytest.raises(ConfigError, match="fp16 .autocast. needs a CUDA device"):
        check_backend("torch", "fp16", "cpu")
    with pytest.raises(BackendUnavailableError, match="TensorrtExecutionProvider"):
        check_backend("onnxruntime", "fp16", "cpu")
    with pytest.raises(ConfigError, match="onnxruntime runs precision fp32, fp16"):
        check_backend("onnxruntime", "bf16", "cpu")
    check_backend("torch", "bf16", "cpu")  # CPU autocast takes bf16


# ---------------------------------------------------------------------------------------- CPU backends


def test_onnxruntime_backend_exports_the_network_once_into_the_cache(tmp_path):
    lines: list[str] = []
    model, meta = load_backend_model(None, "onnxruntime", random_init_seed=0, cache_dir=tmp_path, log=lines.append)
    assert meta["backend"] == "onnxruntime" and meta["precision"] == "fp32"
    assert meta["backend_detail"]["providers"] == ["CPUExecutionProvider"]
    assert model.batched, "the export has a dynamic batch axis: a set runs in one call"
    files = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 1 and len(lines) == 1 and str(files[0]) in lines[0]
    stamp = files[0].stat().st_mtime_ns
    _, again = load_backend_model(None, "onnxruntime", random_init_seed=0, cache_dir=tmp_path, log=lines.append)
    assert len(lines) == 1 and files[0].stat().st_mtime_ns == stamp and again["backend_detail"]["onnx"] == str(files[0])
    _, other = load_backend_model(None, "onnxruntime", random_init_seed=1, cache_dir=tmp_path)
    assert other["backend_detail"]["onnx"] != str(files[0]), "other weights, other cache entry"
    x = torch.rand(3, 3, 40, 56)
    torch_model, _ = load_backend_model(None, "torch", random_init_seed=0)
    with torch.inference_mode():
        assert (model(x) - torch_model(x)).abs().max() < 1e-3


def test_torch_bf16_autocast_on_the_cpu_returns_float32_features():
    model, meta = load_backend_model(None, "torch", "bf16", random_init_seed=0)
    ref, _ = load_backend_model(None, "torch", random_init_seed=0)
    x = torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        got, want = model(x), ref(x)
    assert meta["precision"] == "bf16" and got.dtype == torch.float32 and got.shape == want.shape
    cos = torch.nn.functional.cosine_similarity(got, want, dim=1)
    assert cos.mean() > 0.98


def test_onnxruntime_and_torch_backends_give_identical_labels_on_a_sequence(tmp_path):
    """Two cameras through the node's SetProcessor (batched), once per backend."""
    from test_runtime_pipeline import Header, Log, scene

    from corr_core.propagation.config import PropagationConfig
    from corr_core.propagation.tracker import Tracker
    from corr_core.runtime.drops import DropCounter
    from corr_core.runtime.frames import SizeGate
    from corr_core.runtime.processing import Frame, SetProcessor
    from corr_core.sync import MaskAnchors, SyncedSet

    cams = ["ego", "exo1"]
    frames = {c: [scene(k, s) for s in range(0, 16, 2)] for k, c in enumerate(cams)}
    labels: dict[str, list] = {}
    for backend in ("torch", "onnxruntime"):
        model, _ = load_backend_model(None, backend, random_init_seed=0, cache_dir=tmp_path)
        cfg = PropagationConfig(topk=5, context=3, radius=6.0)
        log = Log()
        proc = SetProcessor({c: Tracker(model, cfg) for c in cams}, MaskAnchors(), {c: SizeGate() for c in cams},
                            DropCounter(log), log)
        for cam in cams:
            proc.anchors.put(cam, 1, frames[cam][0][1])
        out = []
        for i in range(len(frames["ego"])):
            synced = SyncedSet(i + 1, {c: Frame(Header(c), frames[c][i][0], 0.0) for c in cams},
                               dict.fromkeys(cams, i + 1))
            res = proc.process(synced)
            out.append({c: res.outputs[c].labels for c in cams})
        labels[backend] = out
        assert proc.encoder.batches == len(out)  # one network call per set
    for i, (a, b) in enumerate(zip(labels["torch"], labels["onnxruntime"], strict=True)):
        for cam in cams:
            np.testing.assert_array_equal(a[cam], b[cam], err_msg=f"set {i} camera {cam}")
    assert any(len(np.unique(s["ego"])) == 3 for s in labels["torch"][1:])


# ---------------------------------------------------------------------------------------- TensorRT cache


def test_tensorrt_cache_key_changes_with_each_of_its_parts_and_nothing_else():
    from corr_core.export.tensorrt import DEFAULT_PROFILE, EngineSpec, ShapeProfile, engine_key

    base = dict(onnx_sha256="a" * 64, tensorrt_version="10.3.0", compute_capability="8.6", precision="fp16",
                profile=DEFAULT_PROFILE)
    key = EngineSpec(**base).key()
    assert key == engine_key(*base.values()) and len(key) == 24
    other = ShapeProfile((1, 3, 64, 64), (2, 3, 480, 640), (4, 3, 1088, 1920))
    for name, value in (("onnx_sha256", "b" * 64), ("tensorrt_version", "10.4.0"), ("compute_capability", "9.0"),
                        ("precision", "int8"), ("profile", other)):
        assert EngineSpec(**{**base, name: value}).key() != key, name
    with pytest.raises(ConfigError, match="precision"):
        engine_key("a", "10", "8.6", "fp8", DEFAULT_PROFILE)


def test_shape_profiles_parse_check_and_cover():
    from corr_core.export.tensorrt import DEFAULT_PROFILE, ShapeProfile

    assert ShapeProfile.parse(DEFAULT_PROFILE.text()) == DEFAULT_PROFILE
    assert DEFAULT_PROFILE.covers((2, 3, 480, 854)) and DEFAULT_PROFILE.covers((1, 3, 960, 1708))
    assert not DEFAULT_PROFILE.covers((5, 3, 240, 320)) and not DEFAULT_PROFILE.covers((1, 3, 32, 320))
    with pytest.raises(ConfigError, match="MIN:OPT:MAX"):
        ShapeProfile.parse("1x3x64x64:2x3x240x320")
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        ShapeProfile.parse("1x3x64x64:2x3x40x320:4x3x1088x1920")


def test_engine_description_is_the_contract_between_export_and_runtime(tmp_path):
    from corr_core.export import tensorrt as export_trt
    from corr_core.runtime import backends
    from corr_core.runtime import tensorrt as runtime_trt

    assert export_trt.ENGINE_FORMAT == runtime_trt.ENGINE_FORMAT
    assert export_trt.ENGINE_SUFFIX == backends.ENGINE_SUFFIX
    engine = tmp_path / "net.engine"
    with pytest.raises(CheckpointError, match="not found"):
        runtime_trt.read_engine_info(engine)
    engine.write_bytes(b"plan")
    with pytest.raises(CheckpointError, match="missing or unreadable"):
        runtime_trt.read_engine_info(engine)
    info = {"format": export_trt.ENGINE_FORMAT, "tensorrt": "10.3.0", "compute_capability": "8.6",
            "precision": "fp16", "profile": export_trt.DEFAULT_PROFILE.as_dict(), "feature_stride": 8}
    engine.with_suffix(".json").write_text(json.dumps(info))
    assert runtime_trt.read_engine_info(engine)["precision"] == "fp16"
    runtime_trt.check_engine_host(info, "10.3.0", "8.6")
    with pytest.raises(CheckpointError, match=r"built with TensorRT 10.3.0 for compute capability 8.6.*9.0.*--rebuild"):
        runtime_trt.check_engine_host(info, "10.3.0", "9.0", engine)
    engine.with_suffix(".json").write_text(json.dumps({**info, "format": "other"}))
    with pytest.raises(CheckpointError, match="format"):
        runtime_trt.read_engine_info(engine)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_building_an_engine_without_tensorrt_names_it(tmp_path, capsys):
    from corr_core.cli import main as corr_main
    from corr_core.export.tensorrt import ensure_engine

    with pytest.raises(ExportError, match="tensorrt Python package"):
        ensure_engine(tmp_path / "x.onnx", cache_dir=tmp_path)
    assert corr_main(["export", "tensorrt", "--random-init", "0", "--cache-dir", str(tmp_path)]) == 2
    assert "tensorrt" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- GPU (skipped here)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_torch_autocast_on_cuda(precision):
    model, meta = load_backend_model(None, "torch", precision, device="cuda", random_init_seed=0)
    ref, _ = load_backend_model(None, "torch", device="cuda", random_init_seed=0)
    x = torch.rand(2, 3, 240, 320, device="cuda")
    with torch.inference_mode():
        got, want = model(x), ref(x)
    assert got.dtype == torch.float32 and got.is_cuda
    assert torch.nn.functional.cosine_similarity(got, want, dim=1).mean() > 0.98


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA or not _ort_cuda(), reason="no CUDA device or no onnxruntime CUDA provider")
def test_onnxruntime_cuda_provider_matches_torch(tmp_path):
    model, meta = load_backend_model(None, "onnxruntime", device="cuda", random_init_seed=0, cache_dir=tmp_path)
    assert "CUDAExecutionProvider" in meta["backend_detail"]["providers"]
    ref, _ = load_backend_model(None, "torch", device="cuda", random_init_seed=0)
    x = torch.rand(2, 3, 240, 320, device="cuda")
    with torch.inference_mode():
        assert (model(x) - ref(x)).abs().max() < 1e-2


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TRT or not HAS_CUDA, reason="TensorRT or CUDA is not installed")
def test_tensorrt_engine_is_built_once_cached_and_matches_torch(tmp_path):
    lines: list[str] = []
    model, meta = load_backend_model(None, "tensorrt", "fp16", device="cuda", random_init_seed=0, cache_dir=tmp_path,
                                     log=lines.append)
    engines = list((tmp_path / "tensorrt").glob("*.engine"))
    assert len(engines) == 1 and meta["backend_detail"]["engine"] == str(engines[0])
    built = len(lines)
    load_backend_model(None, "tensorrt", "fp16", device="cuda", random_init_seed=0, cache_dir=tmp_path, log=lines.append)
    assert len(lines) == built, "a cached engine is not built again"
    ref, _ = load_backend_model(None, "torch", device="cuda", random_init_seed=0)
    x = torch.rand(2, 3, 240, 320, device="cuda")
    with torch.inference_mode():
        got, want = model(x), ref(x)
    assert torch.nn.functional.cosine_similarity(got, want, dim=1).mean() > 0.99
