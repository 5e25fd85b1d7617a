"""Applies desired twins and says what actually runs.

A desired state changes the pipeline config, the camera and the model without restarting the agent. What
cannot be applied (an unknown camera, a backend that will not load, a model package that is missing or
tampered with) is refused with ``last_error`` in the reported twin while the previous pipeline keeps
running. A new model goes through the A/B slots: install into the idle slot, switch under a health check
(edge_agent.fleet.health) and, when the rollout asks, a shadow comparison (edge_agent.fleet.shadow), and roll
back if it cannot load or fails; how each update ended (succeeded, failed, rolled_back, timed_out) is kept in
the slots' state and reported as ``properties["update"]``. A package not cached locally is fetched by the
downloader (edge_agent.fleet.ota) while the current model keeps running; when it has arrived,
:meth:`TwinManager.reapply` installs it. The update watchdog (edge_agent.fleet.update_watchdog) gives up an
update that stops making progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgefleet import protocol
from edgefleet.protocol import Event, ModelRef, PipelineConfig, TwinDesired, TwinReported
from edge_agent.errors import AgentError, ConfigError, ModelInstallError
from edge_agent.fleet.health import HealthPolicy, UpdateState
from edge_agent.fleet.host import PipelineHost, RunSpec
from edge_agent.fleet.ota import DownloadPending
from edge_agent.fleet.shadow import ShadowPolicy, ShadowResult
from edge_agent.fleet.slots import ModelSlots, SlotInfo
from edge_agent.fleet.state import AppliedState, StateDir

if TYPE_CHECKING:
    from edge_agent.fleet.ota import OtaDownloader
    from edge_agent.fleet.update_watchdog import UpdateWatchdog

log = logging.getLogger(__name__)


def _shadow_policy(desired: TwinDesired) -> ShadowPolicy | None:
    """The rollout's shadow block, when it is meant for the desired model (it names its sha256, or none)."""
    block = desired.properties.get("shadow")
    if isinstance(block, dict) and desired.model is not None and block.get("sha256") not in (None,
                                                                                            desired.model.sha256):
        return None
    return ShadowPolicy.from_properties(desired.properties)


def _same_model(model: SlotInfo | None, ref: ModelRef) -> bool:
    """By content (name, version, sha256): a desired reference may carry the package size, a slot's does not."""
    return model is not None and (model.manifest.name, model.manifest.version, model.package_sha256) == \
        (ref.name, ref.version, ref.sha256)


class TwinManager:
    """The agent's view of desired vs. running state; every change goes through :meth:`apply_desired` or
    :meth:`apply_pipeline_changes`, and every outcome is published with :meth:`report`."""

    def __init__(self, host: PipelineHost, state: StateDir, slots: ModelSlots | None, *, default_camera: str,
                 publish_reported: Callable[[TwinReported], None], emit_event: Callable[[Event], None],
                 downloader: "OtaDownloader | None" = None, watchdog: "UpdateWatchdog | None" = None) -> None:
        self.host = host
        self.downloader = downloader
        self.watchdog = watchdog
        self._timed_out: tuple[str, int] | None = None  # (sha256, revision) given up: not retried for that revision
        self.desired: TwinDesired | None = None  # the last desired state received, re-applied once a package arrives
        self.ota: dict | None = None  # the download's progress, reported as properties["ota"]
        self.state = state
        self.slots = slots
        self.publish_reported = publish_reported
        self.emit_event = emit_event
        self.applied = state.load_applied() or AppliedState(camera=default_camera)
        if self.applied.camera is None:
            self.applied = self.applied.model_copy(update={"camera": default_camera})
        self.model: SlotInfo | None = slots.active() if slots else None
        self.update: dict | None = slots.last_update() if slots else None  # properties["update"]
        self.last_error: str | None = None
        self.rejected = 0
        self._lock = threading.RLock()

    # current state ----------------------------------------------------------------------------
    @property
    def pipeline_config(self) -> PipelineConfig:
        return self.applied.pipeline

    @property
    def camera(self) -> str:
        return self.applied.camera or "synthetic"

    def _spec(self, camera: str, config: PipelineConfig, model: SlotInfo | None) -> RunSpec:
        return RunSpec(camera=camera, config=config, model_dir=model.path if model else None,
                       manifest=model.manifest if model else None)

    def start(self) -> None:
        """Run what was applied last time (or the defaults); report a failure instead of raising."""
        with self._lock:
            try:
                self.host.apply(self._spec(self.camera, self.pipeline_config, self.model))
            except AgentError as exc:
                self._error(f"pipeline did not start: {exc}")
            self.report()

    # changes ----------------------------------------------------------------------------------
    def apply_desired(self, desired: TwinDesired) -> TwinReported:
        with self._lock:
            self.desired = desired
            errors: list[str] = []
            camera = desired.camera or self.camera
            model = was = self.model
            switched = False
            if desired.model is not None and not _same_model(model, desired.model):
                try:
                    self._refuse_rolled_back(desired.model, desired.revision)
                    model, switched = self._prepare_model(desired.model, desired.revision), True
                except DownloadPending:
                    pass  # the current model keeps running until the package has arrived
                except AgentError as exc:
                    errors.append(str(exc))
            spec = self._spec(camera, desired.pipeline, model)
            try:
                if switched:
                    model = self._switch(spec, model, desired, errors)
                else:
                    self.host.apply(spec)
            except ConfigError as exc:
                errors.append(f"desired revision {desired.revision} refused: {exc}")
                return self._finish(desired.revision, errors, None)
            if switched and model is not None and model is not was:
                self.emit_event(Event(kind="model", message=f"now running {model.manifest.name} "
                                      f"{model.manifest.version} from slot {model.slot}",
                                      data={"sha256": model.package_sha256, "slot": model.slot}))
            if camera != self.camera:
                self.emit_event(Event(kind="camera", camera_id=camera, message=f"camera changed to {camera}"))
            self.model = model
            return self._finish(desired.revision, errors,
                                AppliedState(desired_revision=desired.revision, pipeline=desired.pipeline,
                                             camera=camera))

    def _switch(self, spec: RunSpec, model: SlotInfo, desired: TwinDesired, errors: list[str]) -> SlotInfo | None:
        """Switch to the newly activated ``model`` under the health check (and the shadow run the desired twin
        asks for); on any failure go back to the previous slot (ConfigError only when even that cannot run).
        Every path records the update's end: succeeded, failed (never served), rolled_back or timed_out."""
        selection = self.host.selection
        policy = HealthPolicy.from_properties(desired.properties, model.manifest,
                                              desired.pipeline.backend or (selection.backend if selection else None))
        sha, name = model.package_sha256, f"model {model.manifest.name} {model.manifest.version}"
        cancel = self.watchdog.begin(sha, "load") if self.watchdog is not None else None
        verdicts: list[ShadowResult] = []

        def progress(phase: str) -> None:
            if phase == "health":  # telemetry names what serves frames: the new model from its swap on
                self.model = model
            if self.watchdog is not None:
                self.watchdog.progress(sha, phase)

        try:
            result = self.host.switch_model(spec, policy, _shadow_policy(desired), cancel=cancel, on_progress=progress,
                                            on_shadow=lambda verdict: self._shadow_done(sha, verdict, verdicts))
            state: UpdateState = "succeeded" if result.ok else "rolled_back" if result.switched else "failed"
            reason = None if result.ok else result.reason if not result.switched else \
                f"{name} failed its health check: {result.reason}"
        except ConfigError as exc:
            state, reason = "rolled_back", f"{name} failed to load: {exc}"
        except ValueError as exc:  # a malformed shadow block
            state, reason = "failed", str(exc)
        finally:
            if self.watchdog is not None:
                self.watchdog.end(sha)
        shadow = verdicts[-1] if verdicts else None
        timed_out = self.watchdog is not None and self.watchdog.expired(sha)
        if reason is None and not timed_out:
            self._record_update(sha, "succeeded", shadow=shadow)
            return model
        if not timed_out:  # (a timed-out update was recorded when the watchdog gave it up)
            self._record_update(sha, state, reason, shadow=shadow)
        errors.append(f"{name} update timed out" if timed_out else reason if state == "rolled_back"
                      else f"{name} not switched: {reason}")
        previous = self.model = self._rollback()
        # the host went back to the previous spec; the desired camera and config still apply (a no-op if same)
        self.host.apply(self._spec(spec.camera, spec.config, previous))
        return previous

    def _shadow_done(self, sha256: str, verdict: ShadowResult, verdicts: list[ShadowResult]) -> None:
        """Report the comparison before acting on it, so the fleet sees the numbers even if the switch fails."""
        verdicts.append(verdict)
        self.update = {"sha256": sha256, "state": "checking", "reason": verdict.reason, "shadow": verdict.as_dict()}
        self.report()

    def on_update_stalled(self, sha256: str, phase: str, stalled_s: float) -> None:
        """The watchdog gave the update up (on the timer thread): report ``timed_out`` now, even while a stuck
        step holds the twin, then stop its download; a later desired revision starts afresh."""
        reason = f"no progress in {phase} for {stalled_s:.0f}s"
        locked = self._lock.acquire(timeout=1.0)
        try:
            self._timed_out = (sha256, self.desired.revision if self.desired is not None else 0)
            self._record_update(sha256, "timed_out", reason)
            self._error(f"model update {sha256[:12]} timed out: {reason}")
            self.report()
        finally:
            if locked:
                self._lock.release()
        if self.downloader is not None:
            self.downloader.abandon(sha256, f"timed out: {reason}")

    def _refuse_rolled_back(self, ref: ModelRef, revision: int) -> None:
        """A package that failed its check here once is not tried again on every twin message or restart; one
        whose update timed out is tried again only for a later desired revision."""
        update = self.update or {}
        if update.get("sha256") == ref.sha256 and update.get("state") == "rolled_back":
            raise ModelInstallError(f"model {ref.name} {ref.version} was rolled back here: {update.get('reason')}")
        if self._timed_out is not None and self._timed_out[0] == ref.sha256:
            if self._timed_out[1] == revision:
                raise ModelInstallError(f"the update to model {ref.name} {ref.version} timed out: "
                                        f"{update.get('reason')}; a new desired revision tries again")
            self._timed_out = None

    def _record_update(self, sha256: str, state: UpdateState, reason: str | None = None,
                       shadow: ShadowResult | None = None) -> None:
        if self.slots is not None:
            self.update = self.slots.record_update(sha256, state, reason,
                                                   shadow.as_dict() if shadow is not None else None)

    def apply_pipeline_changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        """A local change (the `set_config` command): same path and same refusal rules as a desired twin."""
        with self._lock:
            try:
                config = PipelineConfig.model_validate({**self.pipeline_config.model_dump(), **changes})
            except ValueError as exc:
                raise ConfigError(f"invalid pipeline config: {exc}") from None
            self.host.apply(self._spec(self.camera, config, self.model))
            self.applied = self.applied.model_copy(update={"pipeline": config})
            self.state.save_applied(self.applied)
            self.report()
            return {"pipeline": config.model_dump(mode="json"), "config_hash": protocol.config_hash(config)}

    def _prepare_model(self, ref: ModelRef, revision: int) -> SlotInfo:
        if self.slots is None:
            raise ConfigError("this agent runs a fixed model; it cannot switch models")
        if _same_model(self.model, ref):
            return self.model
        try:
            package = self.slots.locate(ref)
        except ModelInstallError:
            if self.downloader is None:
                raise
            failed = self.downloader.want(ref, revision)
            if failed is not None:
                raise ModelInstallError(f"model package {ref.sha256} not available locally, and cannot be "
                                        f"downloaded: {failed}") from None
            if self.watchdog is not None and self.watchdog.watching() != ref.sha256:
                self.watchdog.begin(ref.sha256, "download")
            raise DownloadPending(ref.sha256) from None
        if self.watchdog is not None:
            self.watchdog.begin(ref.sha256, "install")
        try:
            installed = self.slots.install(package, expect=ref)
        except ModelInstallError as exc:
            if self.watchdog is not None:
                self.watchdog.end(ref.sha256)
            self._ota_outcome(ref, "failed", str(exc))
            self._record_update(ref.sha256, "failed", str(exc))
            raise
        active = self.slots.activate(installed.slot)
        self._ota_outcome(ref, "installed")
        return active

    def _ota_outcome(self, ref: ModelRef, state: str, error: str | None = None) -> None:
        if self.downloader is not None:
            self.downloader.outcome(ref.sha256, state, error[:300] if error else None)

    def reapply(self, sha256: str) -> TwinReported | None:
        """A package arrived: apply the last desired state again if it still names it (installs it)."""
        with self._lock:
            desired = self.desired
            if desired is None or desired.model is None or desired.model.sha256 != sha256:
                return None
            return self.apply_desired(desired)

    def set_ota_progress(self, status: dict) -> None:
        """The downloader's news (on the agent's worker): report it; a failure also becomes ``last_error``."""
        with self._lock:
            was, state = (self.ota or {}).get("state"), status.get("state")
            sha256 = str(status.get("sha256", ""))
            self.ota = status
            error = str(status.get("error"))
            if self.watchdog is not None and state in ("downloading", "verifying"):
                self.watchdog.progress(sha256, "verify" if state == "verifying" else "download")
            if state == "failed" and was != "failed":
                if self.watchdog is not None:
                    self.watchdog.end(sha256)
                timed_out = self._timed_out is not None and self._timed_out[0] == sha256  # stays the final state
                if error not in (self.last_error or "") and not timed_out:
                    self._error(f"model delivery {sha256[:12]} failed: {error}")
                    self._record_update(sha256, "failed", f"delivery failed: {error}")
            self.report()

    def _rollback(self) -> SlotInfo | None:
        previous = self.slots.rollback() if self.slots else None
        self.emit_event(Event(kind="model", message="new model failed; rolled back",
                              data={"slot": previous.slot if previous else None}))
        return previous

    def _finish(self, revision: int, errors: list[str], applied: AppliedState | None) -> TwinReported:
        if applied is not None:
            self.applied = applied
            self.state.save_applied(applied)
        else:
            self.rejected += 1
            self.applied = self.applied.model_copy(update={"desired_revision": revision})
        if errors:
            self._error("; ".join(errors))
        else:
            self.last_error = None
        return self.report()

    def _error(self, message: str) -> None:
        log.warning("%s", message)
        self.last_error = message[:1000]
        self.emit_event(Event(kind="error", message=self.last_error))

    def record_error(self, message: str) -> None:
        """Something outside the twin went wrong (a malformed message); report it in the twin too."""
        with self._lock:
            self.last_error = message[:1000]
            self.report()

    # reporting --------------------------------------------------------------------------------
    def reported(self) -> TwinReported:
        selection = self.host.selection
        return TwinReported(
            desired_revision=self.applied.desired_revision, model=self.model.ref if self.model else None,
            backend=(selection.backend if selection else None), device=(selection.device if selection else None), camera=self.camera,
            config_hash=protocol.config_hash(self.pipeline_config), slot=self.model.slot if self.model else None,
            properties={**({"selection_reason": selection.reason} if selection is not None else {}),
                        **({"ota": self.ota} if self.ota else {}),
                        **({"update": self.update} if self.update else {})},
            last_error=self.last_error,
        )

    def report(self) -> TwinReported:
        reported = self.reported()
        self.publish_reported(reported)
        return reported
