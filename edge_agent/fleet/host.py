"""Keeps one pipeline running and changes it without restarting the agent.

A change (camera, model, backend, thresholds) builds a new pipeline from a :class:`RunSpec`; if the new one
cannot be built or started, the previous spec is started again and the error goes back to the caller, so a
bad desired state never leaves the device dark. Frame counters are kept cumulative across rebuilds, so the
fleet sees monotonic counts for the life of the agent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgefleet.protocol import PipelineConfig
from edge_agent.errors import AgentError, ConfigError

log = logging.getLogger(__name__)

Sink = Callable[[Any], None]
# (model_dir, manifest, source_spec, config, sinks) -> (pipeline, selection); edge_agent.engine.builder.build_pipeline
PipelineFactory = Callable[[Path | None, Any, str, PipelineConfig, Sequence[Sink]], tuple[Any, Any]]

# Fields that only the agent reads (event thresholds are applied in the agent's sink too, but the pipeline's
# post-processor may filter with them, so those still rebuild).
_AGENT_ONLY_FIELDS = {"telemetry_interval_s"}


def selection_field(selection: Any, name: str) -> str | None:
    """Read ``backend``/``device``/``reason`` from a runtime Selection (an object) or a dict."""
    if selection is None:
        return None
    value = selection.get(name) if isinstance(selection, dict) else getattr(selection, name, None)
    return None if value is None else str(value)


@dataclass(frozen=True)
class RunSpec:
    """Everything a pipeline is built from."""

    camera: str
    config: PipelineConfig
    model_dir: Path | None = None
    manifest: Any = None

    def needs_rebuild(self, other: "RunSpec") -> bool:
        if (self.camera, self.model_dir, self.manifest) != (other.camera, other.model_dir, other.manifest):
            return True
        a = self.config.model_dump(exclude=_AGENT_ONLY_FIELDS)
        b = other.config.model_dump(exclude=_AGENT_ONLY_FIELDS)
        return a != b


@dataclass(frozen=True)
class PipelineStats:
    """A pipeline's counters and timings, whatever shape its ``stats()`` has."""

    frames_captured: int = 0
    frames_inferred: int = 0
    frames_dropped: int = 0
    fps: float = 0.0
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_p99: float | None = None
    inference_ms_p50: float | None = None
    inference_ms_p95: float | None = None
    camera_state: str | None = None

    @classmethod
    def read(cls, raw: Any) -> "PipelineStats":
        """Accept a dataclass, an object or a dict, with `latency_ms_p50` or `latency_p50_ms` style names."""
        if raw is None:
            return cls()
        get = raw.get if isinstance(raw, dict) else (lambda k, d=None: getattr(raw, k, d))

        def pick(*names: str, default: Any = None) -> Any:
            for name in names:
                value = get(name, None)
                if value is not None:
                    return value
            return default

        def timing(kind: str, q: str) -> float | None:
            value = pick(f"{kind}_ms_{q}", f"{kind}_{q}_ms", f"{kind}_{q}")
            return float(value) if value is not None else None

        return cls(
            frames_captured=int(pick("frames_captured", "captured", default=0)),
            frames_inferred=int(pick("frames_inferred", "inferred", default=0)),
            frames_dropped=int(pick("frames_dropped", "dropped", default=0)),
            fps=float(pick("fps", default=0.0)),
            latency_ms_p50=timing("latency", "p50"), latency_ms_p95=timing("latency", "p95"),
            latency_ms_p99=timing("latency", "p99"),
            inference_ms_p50=timing("inference", "p50"), inference_ms_p95=timing("inference", "p95"),
            camera_state=pick("camera_state", "source_state", "state"),
        )


@dataclass
class _Running:
    spec: RunSpec
    pipeline: Any = None
    selection: Any = None


@dataclass
class PipelineHost:
    """Owns the running pipeline. ``apply`` and ``restart`` are serialised by one lock."""

    factory: PipelineFactory
    sinks: Sequence[Sink]
    _running: _Running | None = None
    _base: PipelineStats = field(default_factory=PipelineStats)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    rebuilds: int = 0

    @property
    def spec(self) -> RunSpec | None:
        return self._running.spec if self._running else None

    @property
    def selection(self) -> Any:
        return self._running.selection if self._running else None

    @property
    def running(self) -> bool:
        return bool(self._running and self._running.pipeline is not None)

    def apply(self, spec: RunSpec) -> None:
        """Run ``spec``. On failure the previous spec keeps (or goes back to) running and ConfigError is raised."""
        with self._lock:
            previous = self._running.spec if self._running else None
            if previous is not None and self.running and not spec.needs_rebuild(previous):
                self._running = replace(self._running, spec=spec)
                return
            try:
                self._switch_to(spec)
            except Exception as exc:  # noqa: BLE001 - any build/start failure is a rejected change
                log.warning("pipeline change refused: %s", exc)
                if previous is not None:
                    try:
                        self._switch_to(previous)
                    except Exception:  # noqa: BLE001
                        log.exception("could not restart the previous pipeline either")
                        self._running = _Running(previous)
                message = str(exc) if isinstance(exc, AgentError) else f"{type(exc).__name__}: {exc}"
                raise ConfigError(message) from exc

    def restart(self) -> None:
        with self._lock:
            if self._running is None:
                raise ConfigError("no pipeline configured yet")
            self._switch_to(self._running.spec)

    def _switch_to(self, spec: RunSpec) -> None:
        self._stop_current()
        if spec.model_dir is None and spec.manifest is None and not getattr(self.factory, "needs_no_model", False):
            check = getattr(self.factory, "check_source", None)
            if check is not None:
                check(spec.camera)  # refuse a bad camera now, not when the first model arrives
            self._running = _Running(spec)  # nothing to run until a model arrives; still "applied"
            return
        pipeline, selection = self.factory(spec.model_dir, spec.manifest, spec.camera, spec.config, self.sinks)
        try:
            pipeline.start()
        except BaseException:
            self._safe_stop(pipeline)
            raise
        self._running = _Running(spec, pipeline, selection)
        self.rebuilds += 1
        log.info("pipeline running: camera=%s selection=%s", spec.camera, selection)

    def _stop_current(self) -> None:
        if self._running is None or self._running.pipeline is None:
            return
        current = self._running.pipeline
        last = PipelineStats.read(self._safe_stats(current))
        self._base = replace(self._base, frames_captured=self._base.frames_captured + last.frames_captured,
                             frames_inferred=self._base.frames_inferred + last.frames_inferred,
                             frames_dropped=self._base.frames_dropped + last.frames_dropped)
        self._safe_stop(current)
        self._running = replace(self._running, pipeline=None)

    def stats(self) -> PipelineStats:
        """Cumulative counters since the agent started; rates and timings from the running pipeline."""
        with self._lock:
            pipeline = self._running.pipeline if self._running else None
            now = PipelineStats.read(self._safe_stats(pipeline)) if pipeline is not None else PipelineStats(
                camera_state="idle")
            base = self._base
        return replace(now, frames_captured=base.frames_captured + now.frames_captured,
                       frames_inferred=base.frames_inferred + now.frames_inferred,
                       frames_dropped=base.frames_dropped + now.frames_dropped)

    def stop(self) -> None:
        with self._lock:
            self._stop_current()

    @staticmethod
    def _safe_stats(pipeline: Any) -> Any:
        try:
            return pipeline.stats()
        except Exception:  # noqa: BLE001 - a stats failure must not stop telemetry
            log.exception("pipeline stats failed")
            return None

    @staticmethod
    def _safe_stop(pipeline: Any) -> None:
        try:
            pipeline.stop()
        except Exception:  # noqa: BLE001
            log.exception("pipeline stop failed")
