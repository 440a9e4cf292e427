"""ONNX export of a corr feature network, with an onnxruntime parity check.

:func:`export_onnx` takes a model (an ``nn.Module`` and its metadata), not a checkpoint path:
loading checkpoints is :mod:`corr_core.api`'s job (``corr_core.api.export_checkpoint_onnx`` loads
one and calls this). The exported graph follows :mod:`corr_core.io.onnx_format`: input ``image``,
``(B, 3, H, W)`` float32 RGB in [0, 1] (normalisation is inside the graph), output ``features``,
``(B, C, H/stride, W/stride)`` float32. Batch, height and width are dynamic (the cameras of a
synchronised set run as one batch; files written before the batch axis was dynamic take B = 1,
and :mod:`corr_core.runtime` runs them frame by frame). The graph carries its
provenance in the ONNX metadata (``corr_format``, ``arch``, ``feature_stride``, ``channels``,
``source`` and the sha256 of the source weights), which :mod:`corr_core.runtime` checks on load,
so a foreign ONNX file is refused with a clear message.

After writing, the file is loaded with onnxruntime (CPU) and compared with the PyTorch network on
random frames at the export size and at a second size with a batch of two (checks that dynamic
shapes work); a
difference above ``atol`` deletes nothing already there (the new file is written beside it first)
and raises :class:`~corr_core.errors.ExportError`.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from corr_core.errors import CheckpointError, ExportError
from corr_core.io.onnx_format import INPUT_NAME, ONNX_FORMAT, OUTPUT_NAME

__all__ = ["INPUT_NAME", "ONNX_FORMAT", "OUTPUT_NAME", "export_onnx", "onnx_metadata"]

log = logging.getLogger(__name__)


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (corr's provenance entries, see the module docstring).

    Raises:
        CheckpointError: missing or unreadable file.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise CheckpointError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from exc
    return {p.key: p.value for p in model.metadata_props}


def _parity(session: Any, model: torch.nn.Module, size: tuple[int, int], seed: int, batch: int = 1) -> float:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size[0], size[1], generator=gen)
    with torch.inference_mode():
        ref = model(x).numpy()
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    if got.shape != ref.shape:
        raise ExportError(f"onnxruntime output {got.shape} differs in shape from PyTorch's {ref.shape} at {size}")
    return float(np.abs(got - ref).max())


def export_onnx(
    model: nn.Module,
    out: str | Path,
    metadata: dict[str, Any] | None = None,
    size: tuple[int, int] = (240, 320),
    opset: int = 17,
    atol: float = 1e-3,
) -> dict[str, Any]:
    """Exports the feature network ``model`` to ``out`` (``.onnx``) and checks it.

    Args:
        model: a feature network, ``(B, 3, H, W)`` float RGB in [0, 1] -> ``(B, C, h, w)`` float
            features (e.g. from :func:`corr_core.api.load_feature_model`); exported on the CPU in
            float32, in eval mode.
        out: destination ``.onnx`` path (replaced only once the new file has passed the check).
        metadata: the model's metadata: ``arch`` and ``method`` (as in a checkpoint's JSON), and
            where it came from, ``source`` (a path, or ``"random-init"``) and ``source_sha256``
            (of the source weights; empty when there are none). Missing entries are written empty.
        size: ``(H, W)`` of the frames used to trace and check the graph.
        opset: ONNX opset.
        atol: largest absolute difference allowed between onnxruntime and PyTorch features.

    Returns:
        A report: path, metadata, and the parity differences per checked size.

    Raises:
        ExportError: not a module, a bad output name or size, or the export or its parity check
            failed.
    """
    import onnx
    import onnxruntime as ort

    if not isinstance(model, nn.Module):
        raise ExportError(
            f"export_onnx takes a feature network (torch.nn.Module), got {type(model).__name__} {model!r}; "
            "to export a checkpoint file use corr_core.api.export_checkpoint_onnx"
        )
    meta = dict(metadata or {})
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"{out}: the output file must end in .onnx")
    h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise ExportError(f"export size {h}x{w} is too small (at least 16x16)")
    model = copy.deepcopy(model).to("cpu").float().eval()  # the caller's model stays where it is
    with torch.inference_mode():
        probe = model(torch.zeros(1, 3, h, w))
    stride = max(1, round(h / probe.shape[-2]))
    source = str(meta.get("source", "") or "")
    props = {
        "corr_format": ONNX_FORMAT,
        "arch": str(meta.get("arch", "")),
        "method": str(meta.get("method", "")),
        "feature_stride": str(stride),
        "channels": str(int(probe.shape[1])),
        "source": source,
        "source_sha256": str(meta.get("source_sha256", "") or ""),
        "input": f"{INPUT_NAME}: (B, 3, H, W) float32 RGB in [0, 1]",
        "output": f"{OUTPUT_NAME}: (B, C, H/stride, W/stride) float32",
    }

    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter
            torch.onnx.export(
                model,
                (torch.rand(1, 3, h, w),),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                              OUTPUT_NAME: {0: "batch", 2: "fh", 3: "fw"}},
                opset_version=int(opset),
                dynamo=False,
            )
        graph = onnx.load(str(tmp))
        onnx.checker.check_model(graph)
        for key, value in props.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        sizes = [(h, w), (h + 8 * 3 + 5, w - 8 * 2 + 3)]  # the second is not a multiple of the stride
        diffs = {f"{a}x{b}": _parity(session, model, (a, b), seed=i, batch=1 + i) for i, (a, b) in enumerate(sizes)}
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        what = source or type(model).__name__
        raise ExportError(f"ONNX export of {what} failed: {type(exc).__name__}: {exc}") from exc
    worst = max(diffs.values())
    if not worst <= atol:
        tmp.unlink(missing_ok=True)
        raise ExportError(
            f"onnxruntime features differ from PyTorch's by up to {worst:.3g} (> atol {atol:g}) at "
            f"{diffs}; {out} was not written"
        )
    tmp.replace(out)
    report = {"path": str(out), "metadata": props, "parity_max_abs_diff": diffs, "atol": atol,
              "opset": int(opset), "bytes": out.stat().st_size}
    out.with_suffix(".export.json").write_text(json.dumps(report, indent=2))
    log.info("exported %s to %s (parity %s)", source or type(model).__name__, out, diffs)
    return report
