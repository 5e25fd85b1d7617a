"""Latency measurement: real runs in each runtime, stats shaped for the manifest. (No timed assertions: speed
figures go to bench/.)"""

from __future__ import annotations

import pytest

from tests.training.export_fixtures import Quantized, exported, quantized, trained  # noqa: F401 - fixtures
from training.benchmark import BenchConfig, BenchmarkError, bench_interleaved, bench_latency


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_bench_latency_reports_median_p90_and_run_count(quantized: Quantized, runtime: str) -> None:
    e = quantized.exported
    path = e.onnx if runtime == "onnxruntime" else e.xml
    stats = bench_latency(path, runtime, e.trained.spec, runs=7, warmup=2, threads=1)
    assert stats["runs"] == 7
    assert 0 < stats["median_ms"] <= stats["p90_ms"]


def test_interleaved_bench_times_every_configuration_each_round(quantized: Quantized) -> None:
    e = quantized.exported
    configs = [BenchConfig("fp32-ort", e.onnx, "onnxruntime"), BenchConfig("int8-ort", quantized.ort.model_path,
                                                                             "onnxruntime"),
               BenchConfig("fp32-ov-f32", e.xml, "openvino", "f32"),
               BenchConfig("int8-ov", quantized.ov.model_path, "openvino")]
    stats = bench_interleaved(configs, e.trained.spec, rounds=3, runs_per_round=2, warmup=1, threads=1)
    assert set(stats) == {c.name for c in configs}
    assert all(s["runs"] == 6 and s["median_ms"] > 0 for s in stats.values())


def test_missing_model_and_unknown_runtime_are_clear_errors(quantized: Quantized, tmp_path) -> None:
    spec = quantized.exported.trained.spec
    with pytest.raises(BenchmarkError, match="no model file"):
        bench_latency(tmp_path / "absent.onnx", "onnxruntime", spec)
    with pytest.raises(BenchmarkError, match="unknown runtime"):
        bench_latency(quantized.exported.onnx, "tensorrt", spec)  # type: ignore[arg-type]
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00" * 10)
    with pytest.raises(BenchmarkError, match="onnxruntime cannot load garbage.onnx"):
        bench_latency(garbage, "onnxruntime", spec)
