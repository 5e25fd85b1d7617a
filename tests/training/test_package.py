"""Packaging: two signed packages (FP32, INT8) whose manifests carry what an agent and a person need, and a model
card that reads like one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from models.package import unpack, verify
from models.signing import load_or_create_private_key
from tests.training.export_fixtures import Quantized, exported, quantized, trained  # noqa: F401 - fixtures
from training.export import run_onnx, run_openvino
from training.model_card import write_model_card
from training.package import ModelFiles, PackageInputs, build_manifests, host_info, write_packages

BENCH = {"host": host_info(2), "onnxruntime": {"median_ms": 1.5, "p90_ms": 1.7, "runs": 10},
         "openvino": {"median_ms": 1.0, "p90_ms": 1.2, "runs": 10}}


def _inputs(q: Quantized, quantization=None) -> PackageInputs:
    e, t = q.exported, q.exported.trained
    from training.assess import metrics_from_proba
    from training.quantize import to_proba

    metrics = metrics_from_proba(to_proba(run_onnx(e.onnx, t.test_x), "logits"), t.test_y, t.class_names)
    return PackageInputs(
        name="digits-test", version="0.1.0", spec=t.spec, labels=t.class_names, decoding="logits", metrics=metrics,
        fp32=ModelFiles(e.onnx, e.xml, e.bin),
        int8=ModelFiles(q.ort.model_path, q.ov.model_path, q.ov.model_path.with_suffix(".bin")),
        quantization=quantization or [q.ort, q.ov], benchmark_fp32=BENCH, benchmark_int8=BENCH,
        data_fingerprint=t.train_fingerprint, training={"arch": "mobilenetv2", "seed": 0, "split_ratios": [0.6, 0.1, 0.3]},
    )


@pytest.fixture(scope="module")
def packages(quantized: Quantized, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("packages")
    key = load_or_create_private_key(out / "keys" / "signing.pem")
    fp32_pkg, int8_pkg, fp32, int8 = write_packages(_inputs(quantized), out, key)
    return fp32_pkg, int8_pkg, fp32, int8, key, out


def test_both_packages_verify_and_follow_the_int8_naming_convention(packages) -> None:
    fp32_pkg, int8_pkg, _, _, key, _ = packages
    assert fp32_pkg.name == "digits-test-0.1.0.efpkg" and int8_pkg.name == "digits-test-0.1.0-int8.efpkg"
    m32, m8 = verify(fp32_pkg, key.public_key()), verify(int8_pkg, key.public_key())
    assert (m32.precision, m8.precision) == ("fp32", "int8")
    assert m8.version == "0.1.0-int8"


def test_manifests_carry_metrics_labels_input_spec_benchmark_and_quantization_delta(packages,
                                                                                      quantized: Quantized) -> None:
    _, int8_pkg, _, _, key, _ = packages
    m = verify(int8_pkg, key.public_key())
    t = quantized.exported.trained
    assert m.labels == t.class_names and m.input == t.spec and m.output.decoding == "logits"
    assert m.metrics["accuracy"] == pytest.approx(quantized.ort.int8_accuracy / 100, abs=1e-6)
    assert set(m.metrics["int8_by_runtime"]) == {"onnxruntime", "openvino"}
    assert m.benchmark["onnxruntime"]["median_ms"] == 1.5 and m.benchmark["host"]["threads"] == 2
    worst = min((quantized.ort, quantized.ov), key=lambda q: q.delta)
    assert m.quantization is not None and m.quantization.accuracy_delta == worst.delta
    assert m.quantization.calibration_samples == 64
    assert m.data_fingerprint == t.train_fingerprint and m.training["arch"] == "mobilenetv2"
    assert set(m.files) == {"model.onnx", "model.xml", "model.bin"}


def test_unpacked_int8_package_runs_in_both_runtimes(packages, quantized: Quantized, tmp_path: Path) -> None:
    _, int8_pkg, _, _, key, _ = packages
    unpack(int8_pkg, tmp_path / "pkg", key.public_key())
    x = quantized.exported.trained.test_x[:8]
    a = run_onnx(tmp_path / "pkg" / "model.onnx", x)
    b = run_openvino(tmp_path / "pkg" / "model.xml", x, None)
    assert a.shape == b.shape == (8, len(quantized.exported.trained.class_names))
    assert np.isfinite(a).all() and np.isfinite(b).all()


def test_an_int8_drop_over_the_threshold_marks_only_the_int8_package_not_deployable(quantized: Quantized) -> None:
    strict = [dataclasses.replace(q, threshold=-q.delta - 0.01) for q in (quantized.ort, quantized.ov)]
    fp32, int8 = build_manifests(_inputs(quantized, strict))
    assert fp32.deployable and not int8.deployable
    assert any("onnxruntime INT8 accuracy drops" in f for f in int8.flags)
    assert any("openvino INT8 accuracy drops" in f for f in int8.flags)
    relaxed = [dataclasses.replace(q, threshold=-q.delta + 0.5) for q in (quantized.ort, quantized.ov)]
    assert build_manifests(_inputs(quantized, relaxed))[1].deployable


def test_model_card_reports_metrics_per_class_confusion_quantization_and_latency(packages,
                                                                                   quantized: Quantized,
                                                                                   tmp_path: Path) -> None:
    _, _, fp32, int8, _, _ = packages
    plot = tmp_path / "plots" / "confusion_matrix.png"
    plot.parent.mkdir()
    plot.write_bytes(b"png")
    card = write_model_card(tmp_path / "model_card.md", fp32, int8, [quantized.ort, quantized.ov],
                            data={"source": "digits", "train / val / test": "300 / 50 / 150"},
                            cleaning={"in": 500, "kept": 500, "dropped": 0},
                            cross_validation={"k": 5, "mean_accuracy": 0.9, "spread": 0.01},
                            plots={"confusion matrix": plot})
    text = card.read_text()
    for needle in ("## Intended use", "## Data", "## Cleaning", "## Metrics", "### Per class", "### Confusion matrix",
                   "## INT8 quantization", "## Latency", "## Limits", "(plots/confusion_matrix.png)",
                   f"{fp32.metrics['accuracy']:.4f}", f"{quantized.ort.int8_accuracy:.4f}", "onnxruntime-static-qdq-u8s8",
                   "openvino-nncf-ptq", "digits-test-0.1.0-int8.efpkg"):
        assert needle in text, needle
