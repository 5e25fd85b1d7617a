"""The one seam between the engine and whatever drives it (the fleet agent, the simulator, `agent infer`).

The fleet half never reaches into a pipeline's internals: it builds pipelines through a :class:`PipelineFactory`,
drives them as :class:`RunningPipeline` s, reads :class:`PipelineStats` and :class:`Selection` values, and receives
:class:`~edge_agent.engine.postprocess.results.Result` s in its sinks. Anything that satisfies these types (the
real engine, the simulator's stand-in) can run under the agent, which is what keeps the two halves apart.

This module stays light (no runtime, no OpenCV import) so the fleet half can import it on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from edge_agent.engine.postprocess.results import Result
    from edgefleet.protocol import PipelineConfig
    from models.manifest import Manifest

Sink = Callable[["Result"], None]


@dataclass(frozen=True)
class Selection:
    """Which backend and device run a model, and why (the reason is reported in the device twin)."""

    backend: str
    device: str
    reason: str
    fallback: str | None = None  # set when a request could not be met: what was asked, what exists

    def describe(self) -> str:
        text = f"{self.backend} on {self.device}: {self.reason}"
        return f"{text} [{self.fallback}]" if self.fallback else text


@dataclass(frozen=True)
class PipelineStats:
    """Monotonic frame counters and recent timings: the telemetry snapshot's fields (docs/DESIGN.md 5)."""

    frames_captured: int = 0
    frames_inferred: int = 0
    frames_dropped: int = 0
    frames_failed: int = 0
    fps: float = 0.0
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_p99: float | None = None
    inference_ms_p50: float | None = None
    inference_ms_p95: float | None = None
    camera_state: str = "idle"
    backend: str | None = None
    device: str | None = None

    def plus_counters(self, base: "PipelineStats") -> "PipelineStats":
        """These stats with ``base``'s frame counters added: counts stay cumulative across pipeline rebuilds."""
        return replace(self, frames_captured=base.frames_captured + self.frames_captured,
                       frames_inferred=base.frames_inferred + self.frames_inferred,
                       frames_dropped=base.frames_dropped + self.frames_dropped,
                       frames_failed=base.frames_failed + self.frames_failed)


@runtime_checkable
class RunningPipeline(Protocol):
    """What a driver may do with a built pipeline."""

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    def stats(self) -> PipelineStats: ...


@dataclass(frozen=True)
class SampleRun:
    """One pass of a model on one frame, kept whole for a self-test: the raw outputs and what they decode to."""

    inference_ms: float
    outputs: list[Any]  # the runtime's output arrays (numpy), in the model's order
    results: tuple[Any, ...]  # Classification / Detection values


@runtime_checkable
class StagedModel(Protocol):
    """A model loaded beside the running one, not serving yet: what a health check probes before a swap."""

    selection: Selection

    def run_sample(self, image: Any | None = None) -> float:
        """One full pass (preprocess, inference, decoding) on ``image`` (a BGR frame) or a black frame of the
        model's input size; returns the inference milliseconds, raises whatever the model raises."""
        ...

    def run(self, image: Any) -> tuple[tuple[Any, ...], float]:
        """The same full pass on a live frame: its decoded results and the inference milliseconds (a shadow
        evaluation compares them with what the serving model gave for that frame)."""
        ...

    def probe(self, image: Any | None = None) -> SampleRun:
        """What :meth:`run_sample` does, returning the raw outputs and decoded results too (`self_test`)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class HotSwap(Protocol):
    """A factory that can change a running pipeline's model between two frames, without stopping its camera,
    so an update leaves no gap in results. Factories without it are rebuilt by the host instead."""

    def load_model(self, model_dir: Path, manifest: "Manifest", config: "PipelineConfig") -> StagedModel: ...

    def swap(self, pipeline: RunningPipeline, staged: StagedModel) -> None:
        """Serve ``staged`` from now on; the model it replaces is closed once its frames in flight are done."""
        ...


class PipelineFactory(Protocol):
    """Builds pipelines for the agent's host. ``needs_model`` False means it runs without a model package (the
    simulator's built-in stand-in); ``check_source`` refuses a bad camera spec without opening anything."""

    needs_model: bool

    def __call__(self, model_dir: Path | None, manifest: "Manifest | None", camera: str, config: "PipelineConfig",
                 sinks: Sequence[Sink]) -> tuple[RunningPipeline, Selection]: ...

    def check_source(self, spec: str) -> None: ...
