"""INT8 post-training quantization for both runtimes, and the accuracy it costs, measured on the test set.

- onnxruntime: static QDQ quantization, activations uint8 and weights int8 (u8s8). On this CPU s8s8 leaves FP32
  convolutions unfused and runs slower than FP32; u8s8 gives QLinearConv throughout (docs/MEASUREMENTS.md).
- OpenVINO: NNCF post-training quantization of the FP32 IR.

Both are calibrated on preprocessed *training* images, never test images. The INT8 model's test accuracy is measured
in the runtime that will serve it; a drop above ``threshold`` points marks the variant not deployable.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.manifest import Quantization
from training.errors import TrainingError
from training.export import run_onnx, run_openvino

log = logging.getLogger(__name__)

ORT_METHOD = "onnxruntime-static-qdq-u8s8"
NNCF_METHOD = "openvino-nncf-ptq"
DEFAULT_THRESHOLD = 1.0


class QuantizationError(TrainingError):
    """Quantization could not run (bad calibration data, a runtime refused the model)."""


@dataclass
class QuantizationResult:
    """One INT8 model and what it cost. Accuracies are percentages (0..100); ``delta`` = int8 - fp32 in points."""

    runtime: Literal["onnxruntime", "openvino"]
    method: str
    model_path: Path
    fp32_accuracy: float
    int8_accuracy: float
    calibration_samples: int
    threshold: float
    seconds: float
    int8_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def delta(self) -> float:
        return round(self.int8_accuracy - self.fp32_accuracy, 4)

    @property
    def deployable(self) -> bool:
        """A drop of at most ``threshold`` points (a gain is always fine)."""
        return -self.delta <= self.threshold + 1e-9

    def to_manifest(self) -> Quantization:
        return Quantization(method=self.method, fp32_accuracy=self.fp32_accuracy, int8_accuracy=self.int8_accuracy,
                            accuracy_delta=self.delta, threshold=self.threshold,
                            calibration_samples=self.calibration_samples)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("int8_metrics")
        d["model_path"] = str(self.model_path)
        d.update(delta=self.delta, deployable=self.deployable)
        return d


def to_proba(outputs: np.ndarray, decoding: str) -> np.ndarray:
    """Class probabilities from raw outputs: softmax over logits, as-is when the model already ends in softmax."""
    if decoding == "softmax":
        return np.asarray(outputs, np.float64)
    z = np.asarray(outputs, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def measure(proba: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """The assessment's metrics (``training.assess.metrics_from_proba``) for a runtime's probabilities."""
    from training.assess import metrics_from_proba

    return metrics_from_proba(proba, np.asarray(labels), list(class_names))


def _percent(metrics: dict[str, Any]) -> float:
    return round(100.0 * float(metrics["accuracy"]), 4)


def _calibration(calib: np.ndarray, limit: int) -> np.ndarray:
    calib = np.ascontiguousarray(calib, dtype=np.float32)
    if calib.ndim != 4 or len(calib) == 0:
        raise QuantizationError(f"calibration data must be a non-empty (N, C, H, W) float32 array, got {calib.shape}")
    return calib[:limit]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an in-memory array, in small batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch: int = 16) -> None:
        self._items: Iterator[dict[str, np.ndarray]] = iter(
            [{input_name: data[i : i + batch]} for i in range(0, len(data), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)

    def rewind(self) -> None:  # not needed by MinMax calibration; kept for the protocol
        pass


def quantize_onnx(
    fp32_onnx: Path,
    out_path: Path,
    calib: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    class_names: Sequence[str],
    *,
    decoding: str = "logits",
    threshold: float = DEFAULT_THRESHOLD,
    calibration_size: int = 256,
    per_channel: bool = True,
    fp32_metrics: dict[str, Any] | None = None,
) -> QuantizationResult:
    """Static QDQ u8s8 quantization with onnxruntime, then the INT8 model's test accuracy next to the FP32 model's
    (both run in onnxruntime). Per-channel weights keep small convolution kernels accurate at no speed cost."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    start = time.perf_counter()
    data = _calibration(calib, calibration_size)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    reader_cls = type("CalibrationReader", (_Reader, CalibrationDataReader), {})
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=False)
        except Exception as exc:  # noqa: BLE001 - pre-processing is an optimisation; quantize the original
            log.warning("onnxruntime quant_pre_process failed (%s); quantizing the model as exported", exc)
            prepared = Path(fp32_onnx)
        import onnx

        input_name = onnx.load(str(prepared), load_external_data=False).graph.input[0].name
        try:
            quantize_static(
                str(prepared), str(out_path), reader_cls(input_name, data),
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                per_channel=per_channel, extra_options={"ActivationSymmetric": False},
            )
        except Exception as exc:  # noqa: BLE001
            raise QuantizationError(f"onnxruntime quantization of {Path(fp32_onnx).name} failed: {exc}") from exc
    fp32_metrics = fp32_metrics or measure(to_proba(run_onnx(Path(fp32_onnx), test_x), decoding), test_y, class_names)
    int8_metrics = measure(to_proba(run_onnx(out_path, test_x), decoding), test_y, class_names)
    result = QuantizationResult("onnxruntime", ORT_METHOD, out_path, _percent(fp32_metrics), _percent(int8_metrics),
                                len(data), threshold, round(time.perf_counter() - start, 2), int8_metrics)
    log.info("onnxruntime INT8: %.2f%% -> %.2f%% (%+.2f points)", result.fp32_accuracy, result.int8_accuracy,
             result.delta)
    return result


def quantize_openvino(
    fp32_xml: Path,
    out_dir: Path,
    calib: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    class_names: Sequence[str],
    *,
    decoding: str = "logits",
    threshold: float = DEFAULT_THRESHOLD,
    subset_size: int = 300,
    fp32_metrics: dict[str, Any] | None = None,
) -> QuantizationResult:
    """NNCF post-training quantization of the FP32 IR (batch 1 items from ``calib``), saved as ``*-int8.xml`` with
    its weights uncompressed. The FP32 reference is the IR run with the exact-f32 hint; the INT8 model runs with the
    CPU's defaults, as an agent would run it."""
    import nncf
    import openvino as ov

    start = time.perf_counter()
    data = _calibration(calib, subset_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32_xml = Path(fp32_xml)
    xml = out_dir / f"{fp32_xml.stem}-int8.xml"
    try:
        model = ov.Core().read_model(str(fp32_xml))
        dataset = nncf.Dataset([data[i : i + 1] for i in range(len(data))])
        with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: keep stdout for `--json` output
            quantized = nncf.quantize(model, dataset, subset_size=len(data),
                                      preset=nncf.QuantizationPreset.PERFORMANCE)
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
    except Exception as exc:  # noqa: BLE001
        raise QuantizationError(f"NNCF quantization of {fp32_xml.name} failed: {exc}") from exc
    fp32_metrics = fp32_metrics or measure(to_proba(run_openvino(fp32_xml, test_x, "f32"), decoding), test_y,
                                           class_names)
    int8_metrics = measure(to_proba(run_openvino(xml, test_x, None), decoding), test_y, class_names)
    result = QuantizationResult("openvino", NNCF_METHOD, xml, _percent(fp32_metrics), _percent(int8_metrics),
                                len(data), threshold, round(time.perf_counter() - start, 2), int8_metrics)
    log.info("OpenVINO INT8: %.2f%% -> %.2f%% (%+.2f points)", result.fp32_accuracy, result.int8_accuracy,
             result.delta)
    return result


def worst(results: Sequence[QuantizationResult]) -> QuantizationResult:
    """The variant with the largest accuracy drop: what an INT8 package's manifest must own up to."""
    return min(results, key=lambda r: r.delta)
