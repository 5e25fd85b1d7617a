"""Batch-1 latency of an exported model in onnxruntime or OpenVINO, measured the way a camera pipeline calls it.

The input is bound once and each call only runs the model (``benchmark_app``'s call style: a dict per call costs
~20% more on a small model). This machine's CPU changes speed state every few tens of seconds, so comparisons run
their configurations interleaved, round by round (``bench_interleaved``), and should be quoted as ratios.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from models.manifest import InputSpec
from training.errors import TrainingError

Runtime = Literal["onnxruntime", "openvino"]


class BenchmarkError(TrainingError):
    """A model could not be loaded or run for benchmarking."""


@dataclass(frozen=True)
class BenchConfig:
    """One thing to time. ``hint`` is OpenVINO's INFERENCE_PRECISION_HINT (None: the CPU's default, bf16 here)."""

    name: str
    model_path: Path
    runtime: Runtime
    hint: str | None = None


def _input(spec: InputSpec) -> np.ndarray:
    shape = [1, *spec.shape[1:]]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def make_runner(model_path: Path, runtime: Runtime, spec: InputSpec, threads: int = 2,
                hint: str | None = None) -> Callable[[], None]:
    """A zero-argument callable running one inference on a bound random input (warm it up before timing)."""
    x = _input(spec)
    model_path = Path(model_path)
    if not model_path.exists():
        raise BenchmarkError(f"no model file at {model_path}")
    if runtime == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise BenchmarkError(f"onnxruntime cannot load {model_path.name}: {exc}") from exc
        binding = sess.io_binding()
        binding.bind_cpu_input(sess.get_inputs()[0].name, x)
        binding.bind_output(sess.get_outputs()[0].name, "cpu")

        def run_ort() -> None:
            sess.run_with_iobinding(binding)

        return run_ort
    if runtime == "openvino":
        import openvino as ov

        config: dict[str, str] = {"INFERENCE_NUM_THREADS": str(threads), "PERFORMANCE_HINT": "LATENCY"}
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        try:
            core = ov.Core()
            compiled = core.compile_model(core.read_model(str(model_path)), "CPU", config)
        except Exception as exc:  # noqa: BLE001
            raise BenchmarkError(f"OpenVINO cannot load {model_path.name}: {exc}") from exc
        request = compiled.create_infer_request()
        request.set_input_tensor(ov.Tensor(x))
        return request.infer
    raise BenchmarkError(f"unknown runtime {runtime!r} (onnxruntime or openvino)")


def _stats(samples_s: Sequence[float]) -> dict[str, float | int]:
    ms = np.asarray(samples_s) * 1000.0
    return {"median_ms": round(float(np.median(ms)), 4), "p90_ms": round(float(np.percentile(ms, 90)), 4),
            "runs": int(len(ms))}


def _time(run: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        run()
        out.append(time.perf_counter() - t)
    return out


def bench_latency(model_path: Path, runtime: Runtime, spec: InputSpec, runs: int = 100, warmup: int = 10,
                  threads: int = 2, hint: str | None = None) -> dict[str, float | int]:
    """Median and p90 latency in ms of ``runs`` batch-1 inferences after ``warmup`` untimed ones."""
    run = make_runner(model_path, runtime, spec, threads, hint)
    _time(run, warmup)
    return _stats(_time(run, runs))


def bench_interleaved(configs: Sequence[BenchConfig], spec: InputSpec, rounds: int = 10, runs_per_round: int = 20,
                      warmup: int = 10, threads: int = 2) -> dict[str, dict[str, float | int]]:
    """Time several configurations fairly on a CPU whose speed drifts: every round runs each configuration
    ``runs_per_round`` times, so each sees the same mix of fast and slow periods. Returns stats per name."""
    runners = {c.name: make_runner(c.model_path, c.runtime, spec, threads, c.hint) for c in configs}
    for run in runners.values():
        _time(run, warmup)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            samples[name].extend(_time(run, runs_per_round))
    return {name: _stats(s) for name, s in samples.items()}


def bench_variants(fp32_onnx: Path, fp32_xml: Path, int8_onnx: Path, int8_xml: Path, spec: InputSpec,
                   runs: int = 100, threads: int = 2, rounds: int = 5) -> dict[str, dict[str, dict[str, float | int]]]:
    """Latency of both variants in both runtimes, interleaved, shaped for the manifests:
    ``{"fp32": {"onnxruntime", "openvino", "openvino_f32"}, "int8": {"onnxruntime", "openvino"}}``.
    ``openvino`` is the CPU's default precision (bf16 on this CPU), ``openvino_f32`` forces exact FP32."""
    configs = [BenchConfig("fp32/onnxruntime", fp32_onnx, "onnxruntime"),
               BenchConfig("fp32/openvino", fp32_xml, "openvino"),
               BenchConfig("fp32/openvino_f32", fp32_xml, "openvino", "f32"),
               BenchConfig("int8/onnxruntime", int8_onnx, "onnxruntime"),
               BenchConfig("int8/openvino", int8_xml, "openvino")]
    stats = bench_interleaved(configs, spec, rounds=rounds, runs_per_round=max(1, runs // rounds), threads=threads)
    out: dict[str, dict[str, dict[str, float | int]]] = {"fp32": {}, "int8": {}}
    for key, value in stats.items():
        precision, runtime = key.split("/")
        out[precision][runtime] = value
    return out
