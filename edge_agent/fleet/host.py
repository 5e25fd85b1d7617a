"""Keeps one pipeline running and changes it without restarting the agent.

A change (camera, model, backend, thresholds) builds a new pipeline from a :class:`RunSpec`; if the new one
cannot be built or started, the previous spec is started again and the error goes back to the caller, so a
bad desired state never leaves the device dark. Frame counters are kept cumulative across rebuilds, so the
fleet sees monotonic counts for the life of the agent.

A new model goes through :meth:`PipelineHost.switch_model`: where the factory can swap models in place and
only the model changes, the new one is loaded beside the serving one, checked on a sample, optionally run in
shadow beside it on the live frames (edge_agent.fleet.shadow; the host's own sink feeds it), swapped in between
two frames and watched on live frames, and swapped back if it fails, so results never stop; otherwise the
pipeline is rebuilt and watched the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgefleet.protocol import PipelineConfig
from edge_agent.engine.interface import (HotSwap, PipelineFactory, PipelineStats, RunningPipeline, Selection, Sink,
                                        StagedModel)
from edge_agent.errors import AgentError, ConfigError
from edge_agent.fleet.health import HealthPolicy, HealthResult, check_sample, watch_frames
from edge_agent.fleet.shadow import ShadowPolicy, ShadowResult, ShadowRun
from models.manifest import Manifest

log = logging.getLogger(__name__)

# Fields that only the agent reads (event thresholds are applied in the agent's sink too, but the pipeline's
# post-processor may filter with them, so those still rebuild).
_AGENT_ONLY_FIELDS = {"telemetry_interval_s"}


@dataclass(frozen=True)
class RunSpec:
    """Everything a pipeline is built from."""

    camera: str
    config: PipelineConfig
    model_dir: Path | None = None
    manifest: Manifest | None = None

    def needs_rebuild(self, other: "RunSpec") -> bool:
        if (self.camera, self.model_dir, self.manifest) != (other.camera, other.model_dir, other.manifest):
            return True
        a = self.config.model_dump(exclude=_AGENT_ONLY_FIELDS)
        b = other.config.model_dump(exclude=_AGENT_ONLY_FIELDS)
        return a != b


@dataclass
class _Running:
    spec: RunSpec
    pipeline: RunningPipeline | None = None
    selection: Selection | None = None


@dataclass
class PipelineHost:
    """Owns the running pipeline. ``apply`` and ``restart`` are serialised by one lock."""

    factory: PipelineFactory
    sinks: Sequence[Sink]
    _running: _Running | None = None
    _base: PipelineStats = field(default_factory=PipelineStats)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    rebuilds: int = 0
    swaps: int = 0
    _shadow_run: ShadowRun | None = None

    def __post_init__(self) -> None:
        self.sinks = [*self.sinks, self._tap]

    @property
    def spec(self) -> RunSpec | None:
        return self._running.spec if self._running else None

    @property
    def selection(self) -> Selection | None:
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

    def switch_model(self, spec: RunSpec, policy: HealthPolicy, shadow: ShadowPolicy | None = None, *,
                     on_shadow: Callable[[ShadowResult], None] | None = None,
                     on_progress: Callable[[str], None] = lambda phase: None,
                     cancel: threading.Event | None = None) -> HealthResult:
        """Run ``spec`` (a new model) if it passes ``policy`` (and, with ``shadow``, agrees enough with the serving
        model on live frames: see edge_agent.fleet.shadow); otherwise the previous spec runs again and the result
        says why (``switched`` False when the new model never served). ConfigError when the new model cannot even
        be built (the previous spec runs again). ``on_progress`` names each phase as it starts; ``cancel`` set
        (a watchdog gave up on the update) stops a shadow run and refuses the switch."""
        cancel = cancel or threading.Event()
        with self._lock:
            previous = self.spec
            on_progress("load")
            staged, checked = self._stage_and_check(spec, policy)
            if not checked.ok:
                return checked
        if shadow is not None and previous is not None and previous.model_dir is not None and self.running:
            on_progress("shadow")
            verdict = self._shadow(staged, shadow, on_progress, cancel)
            if on_shadow is not None:
                on_shadow(verdict)
            reason = "the update was given up (watchdog)" if cancel.is_set() else verdict.reason
            if reason is not None:
                if staged is not None:
                    staged.close()
                return HealthResult(False, reason, sample_ms=checked.sample_ms, switched=False)
        with self._lock:
            if cancel.is_set():
                if staged is not None:
                    staged.close()
                return HealthResult(False, "the update was given up (watchdog)", switched=False)
            on_progress("health")
            if self._hot_swappable(spec, self.spec):
                self._swap_in(spec, staged)
            else:
                if staged is not None:
                    staged.close()
                self.apply(spec)
        watched = watch_frames(self.stats, policy, on_frame=lambda: on_progress("health"))
        result = replace(watched, sample_ms=checked.sample_ms)
        if not watched.ok and previous is not None:
            with self._lock:
                self._swap_back(previous)
        return result

    def _shadow(self, staged: StagedModel | None, policy: ShadowPolicy, on_progress: Callable[[str], None],
                cancel: threading.Event) -> ShadowResult:
        """Run the shadow window on the frames the serving model delivers (outside the host lock: a twin change
        may rebuild the pipeline meanwhile; the tap stays on whatever pipeline serves)."""
        if staged is None:
            raise ConfigError("a shadow evaluation needs a pipeline that can load a model beside the running one")
        run = ShadowRun(staged, policy, on_frame=lambda: on_progress("shadow"), cancel=cancel)
        self._shadow_run = run
        try:
            return run.run()
        finally:
            self._shadow_run = None

    def _tap(self, result: object) -> None:
        """The host's own sink: hands frames to a shadow run while one is on (cheap when none is)."""
        run = self._shadow_run
        if run is not None:
            run.offer(result)

    def _hot_swappable(self, spec: RunSpec, previous: RunSpec | None) -> bool:
        if not isinstance(self.factory, HotSwap) or previous is None or not self.running:
            return False
        if previous.model_dir is None or spec.model_dir is None or spec.manifest is None:
            return False
        same_run = RunSpec(previous.camera, previous.config, spec.model_dir, spec.manifest)
        return not spec.needs_rebuild(same_run)

    def _stage_and_check(self, spec: RunSpec, policy: HealthPolicy) -> tuple[StagedModel | None, HealthResult]:
        """Load the new model beside the serving one and try it on a sample. Without the HotSwap seam there is
        nothing to stage: the rebuild checks."""
        if not isinstance(self.factory, HotSwap) or spec.model_dir is None or spec.manifest is None:
            return None, HealthResult(True)
        try:
            staged: StagedModel = self.factory.load_model(spec.model_dir, spec.manifest, spec.config)
        except Exception as exc:  # noqa: BLE001 - a model that does not load is a refused change
            message = str(exc) if isinstance(exc, AgentError) else f"{type(exc).__name__}: {exc}"
            raise ConfigError(message) from exc
        result = check_sample(staged, policy)
        if not result.ok:
            staged.close()
            return None, result
        return staged, result

    def _swap_in(self, spec: RunSpec, staged: StagedModel) -> None:
        """The checked model serves from the next frame."""
        try:
            self.factory.swap(self._running.pipeline, staged)
        except Exception as exc:  # noqa: BLE001
            staged.close()
            raise ConfigError(f"could not swap the model in: {exc}") from exc
        self._running = _Running(spec, self._running.pipeline, staged.selection)
        self.swaps += 1
        log.info("model swapped in place: %s", staged.selection)

    def _swap_back(self, previous: RunSpec) -> None:
        """The previous model again, in place when possible (results keep coming), else by a rebuild."""
        try:
            if self._hot_swappable(previous, self.spec):
                staged = self.factory.load_model(previous.model_dir, previous.manifest, previous.config)
                self.factory.swap(self._running.pipeline, staged)
                self._running = _Running(previous, self._running.pipeline, staged.selection)
                self.swaps += 1
                return
        except Exception:  # noqa: BLE001
            log.exception("could not swap the previous model back in place; rebuilding")
        try:
            self._switch_to(previous)
        except Exception:  # noqa: BLE001
            log.exception("could not restart the previous pipeline either")
            self._running = _Running(previous)

    def restart(self) -> None:
        with self._lock:
            if self._running is None:
                raise ConfigError("no pipeline configured yet")
            self._switch_to(self._running.spec)

    def _switch_to(self, spec: RunSpec) -> None:
        self._stop_current()
        if spec.model_dir is None and spec.manifest is None and self.factory.needs_model:
            self.factory.check_source(spec.camera)  # refuse a bad camera now, not when the first model arrives
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
        self._base = self._safe_stats(current).plus_counters(self._base)
        self._safe_stop(current)
        self._running = replace(self._running, pipeline=None)

    def stats(self) -> PipelineStats:
        """Cumulative counters since the agent started; rates and timings from the running pipeline."""
        with self._lock:
            pipeline = self._running.pipeline if self._running else None
            now = self._safe_stats(pipeline) if pipeline is not None else PipelineStats()
            base = self._base
        return now.plus_counters(base)

    def stop(self) -> None:
        with self._lock:
            self._stop_current()

    @staticmethod
    def _safe_stats(pipeline: RunningPipeline) -> PipelineStats:
        try:
            return pipeline.stats()
        except Exception:  # noqa: BLE001 - a stats failure must not stop telemetry
            log.exception("pipeline stats failed")
            return PipelineStats(camera_state="unknown")

    @staticmethod
    def _safe_stop(pipeline: RunningPipeline) -> None:
        try:
            pipeline.stop()
        except Exception:  # noqa: BLE001
            log.exception("pipeline stop failed")
