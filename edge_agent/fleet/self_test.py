"""The `self_test` command: load the active model a second time, beside the one serving frames, run it on its
package's sample input and say whether what comes out is sane.

The sample is the package's own `sample.jpg` / `sample.png` when it ships one (a payload file listed in the
manifest, so its sha256 was checked at install), else a fixed pseudo-random frame of the model's input size (a
black frame hides too much: every model answers it with something finite). Checks: every output is finite, the
batch dimension is 1, a classifier has one score per label and its decoded probabilities sum to 1, and the
median latency stays within the package's benchmark budget (x10, as the update health check allows). A failed
check answers ok=false with the whole report, so a script sees the failure and a person the reason.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
from pydantic import Field

from edge_agent.engine.interface import SampleRun
from edge_agent.fleet.commands import Args, CommandFailed
from edge_agent.fleet.health import benchmark_budget

SAMPLE_NAMES = ("sample.jpg", "sample.jpeg", "sample.png")
PROBABILITY_TOLERANCE = 1e-3


class SelfTestArgs(Args):
    runs: int = Field(5, ge=1, le=50, strict=True, description="timed passes after one warm-up")


def sample_input(model_dir: Any, manifest: Any) -> tuple[np.ndarray, str]:
    """(BGR frame, where it came from)."""
    for name in SAMPLE_NAMES:
        if name in manifest.files and (model_dir / name).is_file():
            import cv2

            image = cv2.imread(str(model_dir / name), cv2.IMREAD_COLOR)
            if image is not None:
                return image, f"package:{name}"
    rng = np.random.default_rng(0)
    shape = (manifest.input.height, manifest.input.width, 3)
    return rng.integers(0, 256, size=shape, dtype=np.uint8), "synthetic"


def _check(checks: list[dict[str, Any]], name: str, ok: bool, detail: str) -> None:
    checks.append({"check": name, "ok": bool(ok), "detail": detail})


def output_checks(run: SampleRun, manifest: Any) -> list[dict[str, Any]]:
    """Sanity of one pass's raw outputs and decoded results."""
    checks: list[dict[str, Any]] = []
    shapes = [list(np.shape(o)) for o in run.outputs]
    _check(checks, "outputs", bool(run.outputs), f"{len(run.outputs)} output(s), shapes {shapes}")
    finite = all(np.all(np.isfinite(np.asarray(o, dtype=np.float64))) for o in run.outputs)
    _check(checks, "finite", finite, "every output value is finite" if finite else "an output holds NaN or inf")
    batch_ok = all(len(s) >= 1 and s[0] == 1 for s in shapes)
    _check(checks, "batch", batch_ok, f"leading dimension of each output is 1: {shapes}")
    if manifest.task == "classification" and run.outputs:
        scores = np.asarray(run.outputs[0], dtype=np.float64).reshape(-1)
        labels = len(manifest.labels)
        _check(checks, "labels", scores.size == labels, f"{scores.size} scores for {labels} labels")
        total = sum(r.score for r in run.results) if len(run.results) == scores.size else None
        if total is not None:
            _check(checks, "probabilities", abs(total - 1.0) < PROBABILITY_TOLERANCE,
                   f"decoded probabilities sum to {total:.6f}")
        raw_is_distribution = bool(np.all(scores >= 0) and abs(scores.sum() - 1.0) < PROBABILITY_TOLERANCE)
        if manifest.output.decoding == "softmax" and not raw_is_distribution:
            checks.append({"check": "softmax_output", "ok": True, "warning": True,
                           "detail": "the package promises probabilities but the model emits logits; the agent "
                                     "applies softmax"})
    return checks


def self_test(factory: Any, model: Any, config: Any, args: SelfTestArgs) -> dict[str, Any]:
    """The reply of `self_test` for the active ``model`` (a slot's SlotInfo) loaded with ``factory``."""
    if model is None:
        raise CommandFailed("no active model to test: install one through the desired twin first")
    if not hasattr(factory, "load_model"):
        raise CommandFailed("this agent's pipeline cannot load a second copy of its model")
    manifest = model.manifest
    image, source = sample_input(model.path, manifest)
    staged = factory.load_model(model.path, manifest, config)
    try:
        staged.probe(image)  # warm-up: first runs allocate
        runs = [staged.probe(image) for _ in range(args.runs)]
    finally:
        staged.close()
    latencies = [r.inference_ms for r in runs]
    median = statistics.median(latencies)
    checks = output_checks(runs[-1], manifest)
    budget = benchmark_budget(manifest, staged.selection.backend)
    if budget is not None:
        _check(checks, "latency", median <= budget, f"median {median:.2f} ms, budget {budget:.2f} ms")
    report = {"passed": all(c["ok"] for c in checks), "model": {"name": manifest.name, "version": manifest.version,
                                                                "sha256": model.package_sha256},
              "backend": staged.selection.backend, "device": staged.selection.device, "input": source,
              "input_shape": list(image.shape), "runs": len(runs),
              "latency_ms": {"median": round(median, 3), "min": round(min(latencies), 3),
                             "max": round(max(latencies), 3)},
              "results": [{"label": r.label, "score": round(float(r.score), 6)} for r in runs[-1].results[:10]],
              "checks": checks}
    if not report["passed"]:
        failed = ", ".join(f"{c['check']} ({c['detail']})" for c in checks if not c["ok"])
        raise CommandFailed(f"self-test failed: {failed}", result=report)
    return report
