"""Is a newly switched-to model fit to keep? The decision rules of the A/B switch's health check.

A model can load and still be bad: its outputs may not decode, it may be far slower than it should be on this
device, or it may fail on real frames. So a new model must pass, in order: a full pass on a sample frame (the
package's or a black frame of its input size) before it serves anything; that pass's latency within a budget
(the rollout's ``health.max_latency_ms``, else the package's build-machine benchmark times a margin, since a
device is slower than the build box, else none); and no more than ``max_errors`` failed frames among the
first ``frames`` live ones after the switch. The host applies these rules; this module only decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from edge_agent.engine.interface import PipelineStats, StagedModel
from models.manifest import Manifest

UpdateState = Literal["succeeded", "failed", "rolled_back", "timed_out"]
LATENCY_MARGIN = 10.0  # a device's latency over the build machine's median before the check calls it too slow
DEFAULT_FRAMES = 10
DEFAULT_WATCH_S = 30.0  # a camera that delivers nothing this long does not fail a model: it says nothing of it


@dataclass(frozen=True)
class HealthPolicy:
    """What a new model must meet; the desired twin's ``properties["health"]`` may set any field."""

    max_latency_ms: float | None = None
    frames: int = DEFAULT_FRAMES
    max_errors: int = 0
    watch_s: float = DEFAULT_WATCH_S

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any] | None, manifest: Manifest | None,
                        backend: str | None = None) -> "HealthPolicy":
        """The rollout's ``health`` block over the defaults; a malformed value keeps its default."""
        block = (properties or {}).get("health")
        block = block if isinstance(block, Mapping) else {}
        budget = _number(block.get("max_latency_ms"))
        if budget is None and manifest is not None:
            budget = benchmark_budget(manifest, backend)
        frames = _number(block.get("frames"))
        errors = _number(block.get("max_errors"))
        watch = _number(block.get("watch_s"))
        return cls(max_latency_ms=budget, frames=int(frames) if frames is not None else DEFAULT_FRAMES,
                   max_errors=int(errors) if errors is not None else 0,
                   watch_s=watch if watch is not None else DEFAULT_WATCH_S)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return None
    return float(value)


def benchmark_budget(manifest: Manifest, backend: str | None) -> float | None:
    """The package's median latency for ``backend`` (or its slowest runtime) times the margin; None without one."""
    medians = {key: _number(val.get("median_ms")) for key, val in manifest.benchmark.items()
               if isinstance(val, Mapping)}
    medians = {key: val for key, val in medians.items() if val}
    if not medians:
        return None
    median = medians.get(backend or "") or max(medians.values())
    return round(median * LATENCY_MARGIN, 3)


@dataclass(frozen=True)
class HealthResult:
    """The verdict; ``reason`` says why a model failed, in words an operator can act on."""

    ok: bool
    reason: str | None = None
    sample_ms: float | None = None
    frames: int = 0
    errors: int = 0
    switched: bool = True  # False: refused before it served a frame (a shadow run that disagreed)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "sample_ms": self.sample_ms, "frames": self.frames,
                "errors": self.errors}


def check_sample(staged: StagedModel, policy: HealthPolicy, sample: Any | None = None) -> HealthResult:
    """Run the staged model on the sample twice (the first run may pay one-off set-up) and judge the second."""
    try:
        staged.run_sample(sample)
        elapsed = staged.run_sample(sample)
    except Exception as exc:  # noqa: BLE001 - whatever the runtime raises is the model failing
        return HealthResult(False, f"sample inference failed: {type(exc).__name__}: {str(exc)[:200]}")
    if policy.max_latency_ms is not None and elapsed > policy.max_latency_ms:
        return HealthResult(False, f"sample latency {elapsed:.1f} ms over the budget of {policy.max_latency_ms:g} ms",
                            sample_ms=round(elapsed, 3))
    return HealthResult(True, sample_ms=round(elapsed, 3))


def watch_frames(stats: Callable[[], PipelineStats], policy: HealthPolicy, *,
                 sleep: Callable[[float], Any] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 poll_s: float = 0.02, on_frame: Callable[[], Any] = lambda: None) -> HealthResult:
    """Count frames done and failed from now until ``policy.frames`` have passed (or ``watch_s`` is up).

    ``stats`` must be cumulative for the running pipeline; the counts start from its value at the call.
    ``on_frame`` is told when frames have passed (the update watchdog's progress)."""
    start = stats()
    deadline = clock() + policy.watch_s
    done = errors = 0
    while True:
        now = stats()
        errors = now.frames_failed - start.frames_failed
        seen, done = done, now.frames_inferred - start.frames_inferred + errors
        if done != seen:
            on_frame()
        if errors > policy.max_errors:
            return HealthResult(False, f"{errors} of the first {done} live frames failed "
                                       f"(at most {policy.max_errors} allowed)", frames=done, errors=errors)
        if done >= policy.frames or clock() >= deadline:
            return HealthResult(True, frames=done, errors=errors)
        sleep(poll_s)
