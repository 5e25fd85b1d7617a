"""Export a trained torch model to ONNX and OpenVINO IR, and prove each export computes what the torch model does.

An export that silently changes the numbers is worse than no export: every file written here is re-run in the
runtime that will serve it and compared with its source on real inputs before anyone gets to package it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from models.manifest import InputSpec
from training.errors import TrainingError

if TYPE_CHECKING:  # heavy imports stay inside the functions
    import torch

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "output"
DEFAULT_TOLERANCE = 1e-4


class ExportError(TrainingError):
    """An export failed or does not compute what its source computes."""


def _check_inputs(spec: InputSpec, sample: np.ndarray | None, n: int = 4) -> np.ndarray:
    """The inputs used to compare runtimes: the caller's real images when given, else seeded noise of the right shape."""
    shape = (n, spec.channels, spec.height, spec.width) if spec.layout == "NCHW" else (n, spec.height, spec.width, spec.channels)
    if sample is None:
        return np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if sample.shape[1:] != shape[1:]:
        raise ExportError(f"check inputs have shape {sample.shape[1:]}, the model expects {shape[1:]}")
    return sample[:n]


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def ort_session(path: Path, threads: int = 0):
    """An onnxruntime CPU session; threads 0 lets onnxruntime choose."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Outputs of an ONNX model on a batch of preprocessed inputs (chunked to bound memory)."""
    sess = ort_session(path)
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs, axis=0)


def run_openvino(xml: Path, x: np.ndarray, hint: str | None = "f32") -> np.ndarray:
    """Outputs of an OpenVINO IR on preprocessed inputs, one image per request (the IR is saved with batch 1).
    ``hint`` sets INFERENCE_PRECISION_HINT: f32 for exact comparisons, None for the CPU's default (bf16 here)."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": hint} if hint else {}
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
    request = compiled.create_infer_request()
    out = []
    for i in range(len(x)):
        request.infer({0: x[i : i + 1]})
        out.append(np.array(request.get_output_tensor(0).data, copy=True))
    return np.concatenate(out, axis=0)


def export_onnx(
    model: "torch.nn.Module",
    spec: InputSpec,
    path: Path,
    opset: int = 17,
    sample: np.ndarray | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    exporter: Literal["legacy", "dynamo"] = "legacy",
) -> Path:
    """Write ``model`` as one self-contained .onnx (weights embedded, batch axis dynamic), check it with
    onnx.checker, and compare onnxruntime's outputs with torch's on ``sample`` (preprocessed real images).

    The legacy TorchScript exporter is the default: it takes ~0.1 s where the dynamo exporter takes seconds, and both
    matched onnxruntime to 5e-6 here. Raises ExportError when the outputs differ by more than ``tolerance``."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = _check_inputs(spec, sample)
    model = model.eval()
    dummy = torch.from_numpy(x[:1].copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        try:
            if exporter == "legacy":
                torch.onnx.export(
                    model, (dummy,), str(path), dynamo=False, opset_version=opset,
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                )
            else:
                torch.onnx.export(
                    model, (dummy,), str(path), dynamo=True, opset_version=opset, external_data=False,
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                )
        except Exception as exc:  # noqa: BLE001 - every exporter failure becomes one clear error
            raise ExportError(f"torch.onnx.export failed ({exporter}): {exc}") from exc
    stray = path.with_name(path.name + ".data")
    if stray.exists():
        raise ExportError(f"the exporter wrote external weights to {stray}; the .onnx must be self-contained")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"onnx.checker rejected {path.name}: {exc}") from exc
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = run_onnx(path, x)
    diff = _max_diff(expected, got)
    if got.shape != expected.shape or diff > tolerance:
        raise ExportError(
            f"onnxruntime's outputs differ from torch's by {diff:.3g} (tolerance {tolerance:g}); shapes "
            f"{got.shape} vs {expected.shape}")
    log.info("exported %s (max |torch - onnxruntime| = %.2g)", path, diff)
    return path


def export_openvino(
    onnx_path: Path,
    out_dir: Path,
    sample: np.ndarray | None = None,
    spec: InputSpec | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[Path, Path]:
    """Convert the ONNX model to OpenVINO IR (xml + bin) with batch fixed to 1 (what a camera pipeline feeds) and
    FP32 weights (``save_model`` would halve them to FP16 by default), then compare OpenVINO's outputs, run with the
    f32 precision hint, against onnxruntime's."""
    import openvino as ov

    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        model = ov.convert_model(str(onnx_path))
        shape = list(model.input(0).get_partial_shape())
        fixed = [1] + [int(d.get_length()) for d in shape[1:]]
        model.reshape({model.input(0): ov.PartialShape(fixed)})
        xml = out_dir / (onnx_path.stem + ".xml")
        ov.save_model(model, str(xml), compress_to_fp16=False)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"OpenVINO could not convert {onnx_path.name}: {exc}") from exc
    if sample is None:
        if spec is None:
            spec = InputSpec(shape=fixed)
        sample = _check_inputs(spec, None)
    x = np.ascontiguousarray(sample[:4], dtype=np.float32)
    diff = _max_diff(run_onnx(onnx_path, x), run_openvino(xml, x, hint="f32"))
    if diff > tolerance:
        raise ExportError(f"OpenVINO's outputs differ from onnxruntime's by {diff:.3g} (tolerance {tolerance:g})")
    log.info("exported %s (max |onnxruntime - openvino| = %.2g)", xml, diff)
    return xml, xml.with_suffix(".bin")
