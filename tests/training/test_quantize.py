"""INT8 quantization for both runtimes: the models run, their accuracy is measured, and the deployable flag follows
the threshold."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from tests.training.export_fixtures import Quantized, exported, quantized, trained  # noqa: F401 - fixtures
from training.assess import metrics_from_proba
from training.export import run_onnx, run_openvino
from training.quantize import QuantizationError, quantize_onnx, to_proba


def test_onnxruntime_int8_model_is_qdq_with_uint8_activations(quantized: Quantized) -> None:
    graph = onnx.load(str(quantized.ort.model_path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    zero_points = {init.name: init for init in graph.initializer if init.name.endswith("zero_point")}
    activation_zp = [n.input[2] for n in graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert activation_zp and all(zero_points[name].data_type == onnx.TensorProto.UINT8 for name in activation_zp
                                 if name in zero_points)
    weight_types = {init.data_type for init in graph.initializer if init.data_type in (onnx.TensorProto.INT8,
                                                                                        onnx.TensorProto.UINT8)}
    assert onnx.TensorProto.INT8 in weight_types  # u8s8: weights signed
    assert quantized.ort.model_path.stat().st_size < 0.5 * quantized.exported.onnx.stat().st_size


def test_int8_accuracies_are_what_the_int8_models_score_on_the_test_set(quantized: Quantized) -> None:
    t = quantized.exported.trained
    ort_acc = metrics_from_proba(to_proba(run_onnx(quantized.ort.model_path, t.test_x), "logits"), t.test_y,
                                 t.class_names)["accuracy"]
    ov_acc = metrics_from_proba(to_proba(run_openvino(quantized.ov.model_path, t.test_x, None), "logits"),
                                t.test_y, t.class_names)["accuracy"]
    fp32_acc = metrics_from_proba(to_proba(run_onnx(quantized.exported.onnx, t.test_x), "logits"), t.test_y,
                                  t.class_names)["accuracy"]
    assert quantized.ort.int8_accuracy == pytest.approx(100 * ort_acc, abs=1e-3)
    assert quantized.ov.int8_accuracy == pytest.approx(100 * ov_acc, abs=1e-3)
    assert quantized.ort.fp32_accuracy == pytest.approx(100 * fp32_acc, abs=1e-3)
    for q in (quantized.ort, quantized.ov):
        assert q.delta == pytest.approx(q.int8_accuracy - q.fp32_accuracy, abs=1e-3)
        assert q.calibration_samples == 64
        assert q.int8_metrics["n"] == len(t.test_y)


def test_nncf_int8_ir_holds_fake_quantize_nodes_and_fp32_weights_elsewhere(quantized: Quantized) -> None:
    import openvino as ov

    model = ov.Core().read_model(str(quantized.ov.model_path))
    types = {op.get_type_name() for op in model.get_ops()}
    assert "FakeQuantize" in types
    assert quantized.ov.model_path.with_suffix(".bin").exists()


def test_deployable_flag_follows_the_threshold_on_both_sides(quantized: Quantized) -> None:
    for q in (quantized.ort, quantized.ov):
        drop = -q.delta
        assert dataclasses.replace(q, threshold=drop).deployable
        assert dataclasses.replace(q, threshold=drop + 0.5).deployable
        assert not dataclasses.replace(q, threshold=drop - 0.01).deployable
        manifest_part = dataclasses.replace(q, threshold=drop - 0.01).to_manifest()
        assert manifest_part.accuracy_delta == q.delta and manifest_part.method == q.method


def test_calibration_data_of_the_wrong_rank_is_refused(quantized: Quantized, tmp_path) -> None:
    t = quantized.exported.trained
    with pytest.raises(QuantizationError, match="calibration data"):
        quantize_onnx(quantized.exported.onnx, tmp_path / "x.onnx", np.zeros((4, 32), np.float32), t.test_x,
                      t.test_y, t.class_names)
    assert not (tmp_path / "x.onnx").exists()


def test_to_proba_applies_softmax_to_logits_only() -> None:
    logits = np.array([[2.0, 0.0, -1.0]])
    p = to_proba(logits, "logits")
    assert p.sum() == pytest.approx(1.0) and p.argmax() == 0
    probs = np.array([[0.2, 0.8]])
    assert np.array_equal(to_proba(probs, "softmax"), probs)
