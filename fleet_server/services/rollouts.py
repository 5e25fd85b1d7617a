"""Staged rollouts of a registry package: creating one (targets, waves, gates), listing, pausing, resuming and
aborting. What happens to a running rollout tick by tick is `services.rollout_steps`; the thread that ticks is
`fleet_server.rollout_scheduler`. Everything is in the database, so any server process can pick a rollout up.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.orm import Session

from fleet_server.db.locking import get_for_update
from fleet_server.db.models import Device, ModelPackage, Rollout, RolloutDevice
from fleet_server.errors import Conflict, Forbidden, NotFound
from fleet_server.services import audit
from fleet_server.services.devices import list_devices

ACTIVE = ("running", "paused")
FINAL_DEVICE_STATES = ("succeeded", "failed", "rolled_back", "timed_out")
# The benchmark is the median inference latency on the build machine; a device's end-to-end p95 includes
# capture, preprocessing and a slower CPU, so the default gate leaves this much headroom over it.
BENCHMARK_HEADROOM = 10.0
MAX_SHADOW_S = 3600.0  # the agent refuses a longer shadow window (edge_agent.fleet.shadow)
# device=ID takes ids as the protocol allows them (edgefleet.protocol.validate_device_id)
_TARGET = re.compile(r"^(all|tag=[^=\s]{1,64}=[^\s]{1,128}|device=[a-z0-9][a-z0-9_-]{2,62})$")


class RolloutCreate(BaseModel):
    """What an operator asks for. Percentages are 0-100; gates left out come from the package's benchmark."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=r"^[^:\s]+:[^:\s]+$", max_length=200, description="NAME:VERSION in the registry")
    target: str = Field("all", description="all | tag=K=V | device=ID (live: later matching devices join)")
    canary_percent: float = Field(10.0, gt=0, le=100, description="of the targets, at least one device")
    waves: int = Field(3, ge=1, le=100, description="equal waves after the canary")
    max_failure_percent: float = Field(0.0, ge=0, le=100, description="a wave with more failed devices halts")
    wave_timeout_s: int = Field(1800, ge=1, le=7 * 86400, description="a device not done by then has timed out")
    rollback_on_halt: bool = True
    force: bool = Field(False, description="roll out a package marked not deployable (admin only, audited)")
    window_start_hour: int | None = Field(None, ge=0, le=23, description="device-local hour switches may start")
    window_end_hour: int | None = Field(None, ge=0, le=23, description="device-local hour switches stop")
    min_fps: float | None = Field(None, ge=0)
    max_p95_ms: float | None = Field(None, gt=0)
    max_error_rate: float | None = Field(None, ge=0, le=1, description="dropped / captured frames")
    shadow_s: float | None = Field(None, gt=0, le=MAX_SHADOW_S, description="run the new model beside the current "
                                   "one on live frames this long before switching (shadow evaluation)")
    min_agreement: float | None = Field(None, ge=0, le=1, description="shadow agreement (top-1 class, or boxes at "
                                        "IoU 0.5) below which a device does not switch and fails; needs shadow_s")

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if not _TARGET.match(v):
            raise ValueError("target must be all, tag=KEY=VALUE or device=ID")
        return v

    @model_validator(mode="after")
    def _window(self) -> "RolloutCreate":
        if (self.window_start_hour is None) != (self.window_end_hour is None):
            raise ValueError("a maintenance window needs both window_start_hour and window_end_hour")
        if self.window_start_hour is not None and self.window_start_hour == self.window_end_hour:
            raise ValueError("a maintenance window's start and end hour must differ")
        if self.min_agreement is not None and self.shadow_s is None:
            raise ValueError("min_agreement needs a shadow evaluation: give shadow_s too")
        if self.shadow_s is not None and self.shadow_s >= self.wave_timeout_s:
            raise ValueError(f"shadow_s ({self.shadow_s:g}) must be shorter than wave_timeout_s "
                             f"({self.wave_timeout_s}): a device could never finish in time")
        return self


def _now() -> datetime:
    return datetime.now(timezone.utc)


def matches(target: str, device: Device) -> bool:
    """Whether a device is one of the target's (checked again at every tick: targets are live)."""
    if target == "all":
        return True
    kind, _, rest = target.partition("=")
    if kind == "device":
        return device.id == rest
    key, _, value = rest.partition("=")
    return (device.tags or {}).get(key) == value


def split_waves(count: int, canary_percent: float, waves: int) -> list[int]:
    """The wave of each of `count` devices in order: wave 0 is the canary (at least one device), then
    `waves` waves as equal as they can be."""
    if count == 0:
        return []
    canary = min(count, max(1, math.ceil(count * canary_percent / 100)))
    rest = count - canary
    plan = [0] * canary
    for wave in range(1, waves + 1):
        plan += [wave] * (-(-rest * wave // waves) + (rest * (wave - 1) // -waves))  # ceil: early waves fuller
    return plan


def default_p95_ms(package: ModelPackage) -> float | None:
    timings = [v for per_device in (package.manifest.get("benchmark") or {}).values()
               if isinstance(per_device, dict) for v in per_device.values() if isinstance(v, (int, float))]
    return round(max(timings) * BENCHMARK_HEADROOM, 3) if timings else None


def create(session: Session, spec: RolloutCreate, *, actor: str, actor_role: str) -> Rollout:
    """Plan the rollout's waves over the devices its target matches now. Refused (Forbidden) for a package
    marked not deployable unless an admin forces it; the force is audited. The caller commits."""
    name, _, version = spec.model.partition(":")
    from fleet_server.services.models import get_package  # models imports this module (in_use): import late

    package = get_package(session, name, version)
    if not package.deployable and not spec.force:
        flags = "; ".join(package.manifest.get("flags") or []) or "flagged by training"
        raise Conflict(f"model {name} {version} is marked not deployable ({flags}); an admin may force it")
    if spec.force and actor_role != "admin":
        raise Forbidden("only an admin key may force a rollout")
    now = _now()
    rollout = Rollout(model_sha256=package.sha256, model_name=name, model_version=version,
                      model_size=package.size, target=spec.target, canary_percent=spec.canary_percent,
                      waves=spec.waves, max_failure_percent=spec.max_failure_percent,
                      wave_timeout_s=spec.wave_timeout_s, rollback_on_halt=spec.rollback_on_halt,
                      forced=spec.force and not package.deployable, window_start_hour=spec.window_start_hour,
                      window_end_hour=spec.window_end_hour, min_fps=spec.min_fps,
                      max_p95_ms=spec.max_p95_ms if spec.max_p95_ms is not None else default_p95_ms(package),
                      max_error_rate=spec.max_error_rate, shadow_s=spec.shadow_s, min_agreement=spec.min_agreement,
                      state="running", current_wave=0, created_by=actor, created_at=now, updated_at=now)
    session.add(rollout)
    session.flush()
    targets = [d for d in list_devices(session) if matches(spec.target, d)]
    for device, wave in zip(targets, split_waves(len(targets), spec.canary_percent, spec.waves)):
        session.add(RolloutDevice(rollout_id=rollout.id, device_id=device.id, wave=wave, state="pending"))
    details: dict[str, Any] = {**spec.model_dump(mode="json"), "sha256": package.sha256, "devices": len(targets)}
    audit.record(session, actor=actor, action="rollout.create", target=str(rollout.id), details=details)
    if rollout.forced:
        audit.record(session, actor=actor, action="rollout.force", target=package.sha256,
                     details={"rollout": rollout.id, "flags": package.manifest.get("flags") or []})
    session.flush()
    return rollout


def get_rollout(session: Session, rollout_id: int, *, for_update: bool = False) -> Rollout:
    """The rollout or NotFound. `for_update` holds its row until commit, so the scheduler's step and an
    operator's pause or abort never interleave (fleet_server.db.locking)."""
    rollout = (get_for_update(session, Rollout, Rollout.id, rollout_id, Rollout.state) if for_update
               else session.get(Rollout, rollout_id))
    if rollout is None:
        raise NotFound(f"no rollout {rollout_id}")
    return rollout


def list_rollouts(session: Session, *, state: str | None = None) -> list[Rollout]:
    """Newest first."""
    q = sa.select(Rollout).order_by(Rollout.id.desc())
    if state is not None:
        q = q.where(Rollout.state == state)
    return list(session.scalars(q))


def devices_of(session: Session, rollout_id: int) -> list[RolloutDevice]:
    return list(session.scalars(sa.select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id)
                                .order_by(RolloutDevice.wave, RolloutDevice.device_id)))


def in_use(session: Session, sha256: str) -> list[str]:
    """Running or paused rollouts of the package, as readable names (they block deleting it)."""
    q = sa.select(Rollout.id).where(Rollout.model_sha256 == sha256, Rollout.state.in_(ACTIVE))
    return [f"rollout {rollout_id}" for rollout_id in session.scalars(q)]


_MOVES = {"pause": ({"running"}, "paused"), "resume": ({"paused"}, "running"),
          "abort": ({"running", "paused"}, "aborted")}


def change_state(session: Session, rollout_id: int, action: str, *, actor: str) -> Rollout:
    """pause (no device starts; those updating are still judged), resume, abort (final; nothing is rolled
    back, and devices not done keep their state with the reason). Conflict from any other state."""
    allowed, new_state = _MOVES[action]
    rollout = get_rollout(session, rollout_id, for_update=True)
    if rollout.state not in allowed:
        raise Conflict(f"rollout {rollout_id} is {rollout.state}; it cannot {action}")
    rollout.state = new_state
    rollout.updated_at = _now()
    if action == "abort":
        rollout.finished_at = rollout.updated_at
        rollout.reason = f"aborted by {actor}"
        for rd in devices_of(session, rollout_id):
            if rd.state in ("pending", "updating"):
                rd.reason = "rollout aborted before this device finished"
    audit.record(session, actor=actor, action=f"rollout.{action}", target=str(rollout_id))
    session.flush()
    return rollout


def ota_progress(device: Device | None, sha256: str) -> float | None:
    """Download progress (percent) of this package from the device's reported ota property."""
    props = ((device.reported or {}).get("properties") or {}) if device is not None else {}
    ota = props.get("ota")
    if not isinstance(ota, dict) or ota.get("sha256") != sha256:
        return None
    if ota.get("state") == "installed":
        return 100.0
    percent = ota.get("percent")
    return float(percent) if isinstance(percent, (int, float)) else None


def known_device_ids(session: Session, rollout_id: int) -> set[str]:
    return set(session.scalars(sa.select(RolloutDevice.device_id).where(RolloutDevice.rollout_id == rollout_id)))

