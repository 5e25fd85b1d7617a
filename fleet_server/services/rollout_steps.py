"""One step of a rollout, as the scheduler takes it each tick: devices that newly match join, updating devices
are judged from what they reported, the current wave's pending devices start (inside the maintenance window),
and a finished wave passes, or halts the rollout (rolling the started devices back when asked).

Each step reads everything from the database and writes every decision there, so it does not matter which
server process took the previous step, or whether one restarted in between. Desired twins changed by a step
are returned for the caller to publish once the step is committed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgefleet.protocol import ModelRef
from fleet_server.db.models import Device, Rollout, RolloutDevice, TelemetryRow
from fleet_server.schemas import TwinPatch
from fleet_server.services import audit
from fleet_server.services.devices import list_devices
from fleet_server.services.rollouts import (ACTIVE, FINAL_DEVICE_STATES, devices_of, get_rollout,
                                            known_device_ids, matches)
from fleet_server.services.twin import desired_of, patch_twin

FAILED = ("failed", "timed_out")
OTA_FAILED = ("failed", "rolled_back")
_RECENT_TELEMETRY = 20  # snapshots looked at for the newest one from the new model


def step(session: Session, rollout_id: int, *, now: datetime) -> list[str]:
    """Take one step of an active rollout. Returns the ids of devices whose desired twin changed. The caller
    commits, then publishes them."""
    rollout = get_rollout(session, rollout_id, for_update=True)
    if rollout.state not in ACTIVE:
        return []
    changed: list[str] = []
    rds = devices_of(session, rollout.id)
    if rollout.state == "running":
        rds += _join_new(session, rollout)
    for rd in rds:
        if rd.state == "updating":
            _judge(session, rollout, rd, now)
    while rollout.state == "running":  # a wave that passes starts the next in the same step
        at = rollout.current_wave
        wave = [rd for rd in rds if rd.wave == at]
        for rd in wave:
            if rd.state == "pending" and _start(session, rollout, rd, now):
                changed.append(rd.device_id)
        if not all(rd.state in FINAL_DEVICE_STATES for rd in wave):
            break
        changed += _wave_done(session, rollout, wave, rds, now)
        if rollout.current_wave == at:
            break
    session.flush()
    return changed


def _join_new(session: Session, rollout: Rollout) -> list[RolloutDevice]:
    """Devices enrolled or re-tagged since the rollout was planned that its target now matches join the
    current wave."""
    known = known_device_ids(session, rollout.id)
    joined = [RolloutDevice(rollout_id=rollout.id, device_id=d.id, wave=rollout.current_wave, state="pending")
              for d in list_devices(session) if d.id not in known and matches(rollout.target, d)]
    session.add_all(joined)
    return joined


def _finish(rd: RolloutDevice, state: str, reason: str | None, now: datetime) -> None:
    rd.state, rd.reason, rd.finished_at = state, (reason or "")[:1000] or None, now


def device_hour(device: Device, now: datetime) -> int:
    """The device-local hour: its `tz` tag or `timezone` hardware fact (an IANA name), else UTC."""
    name = (device.tags or {}).get("tz") or (device.hardware or {}).get("timezone") or "UTC"
    try:
        zone = ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return now.astimezone(zone).hour


def in_window(rollout: Rollout, device: Device, now: datetime) -> bool:
    start, end = rollout.window_start_hour, rollout.window_end_hour
    if start is None or end is None:
        return True
    hour = device_hour(device, now)
    return start <= hour < end if start < end else hour >= start or hour < end


def _start(session: Session, rollout: Rollout, rd: RolloutDevice, now: datetime) -> bool:
    """Point the device's desired twin at the package, remembering the model to go back to."""
    device = session.get(Device, rd.device_id)
    if device is None or not device.active:
        _finish(rd, "failed", "device decommissioned before its update started", now)
        return False
    if not in_window(rollout, device, now):
        rd.reason = "waiting for the maintenance window"
        return False
    current = desired_of(device.desired)
    rd.previous_model = current.model.model_dump(mode="json") if current and current.model else None
    ref = ModelRef(name=rollout.model_name, version=rollout.model_version, sha256=rollout.model_sha256,
                   size=rollout.model_size)
    patch_twin(session, device.id, TwinPatch(model=ref), actor=f"rollout:{rollout.id}")
    rd.state, rd.reason, rd.started_at = "updating", None, now
    return True


def _judge(session: Session, rollout: Rollout, rd: RolloutDevice, now: datetime) -> None:
    device = session.get(Device, rd.device_id)
    if device is None or not device.active:
        _finish(rd, "failed", "device decommissioned during its update", now)
        return
    verdict = _reported_verdict(rollout, device, rd.started_at)
    if verdict == "running":
        failed_gate = _gate_failure(session, rollout, rd)
        _finish(rd, "failed" if failed_gate else "succeeded", failed_gate, now)
    elif verdict is not None:
        _finish(rd, "failed", verdict, now)
    elif rd.started_at is not None and now - rd.started_at > timedelta(seconds=rollout.wave_timeout_s):
        _finish(rd, "timed_out", f"not running the new model {rollout.wave_timeout_s}s after the switch", now)


def _reported_verdict(rollout: Rollout, device: Device, since: datetime | None) -> str | None:
    """"running" when the device reports the new package running and installed, a failure reason, or None
    while it is still on its way. Only reports made since the switch count."""
    reported: dict[str, Any] = device.reported or {}
    if not reported or (since is not None and (device.reported_at is None or device.reported_at < since)):
        return None
    properties = reported.get("properties") or {}
    ota = properties.get("ota")
    ota = ota if isinstance(ota, dict) and ota.get("sha256") == rollout.model_sha256 else None
    if ota is not None and ota.get("state") in OTA_FAILED:
        return f"update {ota.get('state')}: {ota.get('error') or 'no reason given'}"
    # how the device's last update ended (kept by the agent until the next one ends): a model that installed
    # but failed its health check and was rolled back shows here, even once last_error says something else
    update = properties.get("update")
    if isinstance(update, dict) and update.get("sha256") == rollout.model_sha256 \
            and update.get("state") in OTA_FAILED:
        return f"update {update.get('state')}: {update.get('reason') or 'no reason given'}"
    error = reported.get("last_error") or ""
    if rollout.model_sha256 in error or f"{rollout.model_name} {rollout.model_version}" in error:
        return f"device reports: {error}"
    model = reported.get("model") or {}
    if model.get("sha256") == rollout.model_sha256 and (ota is None or ota.get("state") == "installed"):
        return "running"
    return None


def _gate_failure(session: Session, rollout: Rollout, rd: RolloutDevice) -> str | None:
    """Why the newest telemetry from the new model, since the switch, is outside the gates; None when it is
    within them or there is none yet."""
    q = (sa.select(TelemetryRow).where(TelemetryRow.device_id == rd.device_id)
         .order_by(TelemetryRow.ts.desc(), TelemetryRow.id.desc()).limit(_RECENT_TELEMETRY))
    if rd.started_at is not None:
        q = q.where(TelemetryRow.ts >= rd.started_at)
    snap = next((row.payload for row in session.scalars(q)
                 if row.payload.get("model_name") == rollout.model_name
                 and row.payload.get("model_version") == rollout.model_version), None)
    if snap is None:
        return None
    fps, p95 = snap.get("fps") or 0.0, snap.get("latency_ms_p95")
    if rollout.min_fps is not None and fps < rollout.min_fps:
        return f"fps {fps:g} below the gate {rollout.min_fps:g}"
    if rollout.max_p95_ms is not None and p95 is not None and p95 > rollout.max_p95_ms:
        return f"p95 latency {p95:g} ms over the gate {rollout.max_p95_ms:g} ms"
    captured = snap.get("frames_captured") or 0
    if rollout.max_error_rate is not None and captured:
        rate = (snap.get("frames_dropped") or 0) / captured
        if rate > rollout.max_error_rate:
            return f"error rate {rate:.3f} (dropped/captured frames) over the gate {rollout.max_error_rate:g}"
    return None


def _wave_done(session: Session, rollout: Rollout, wave: list[RolloutDevice], rds: list[RolloutDevice],
               now: datetime) -> list[str]:
    """Pass the finished wave (next wave, or success after the last) or halt. Returns rolled-back devices."""
    failures = sum(rd.state in FAILED for rd in wave)
    name = "canary" if rollout.current_wave == 0 else f"wave {rollout.current_wave}"
    rollout.updated_at = now
    if wave and failures * 100 / len(wave) > rollout.max_failure_percent:
        rollout.state, rollout.finished_at = "halted", now
        rollout.reason = (f"{name}: {failures} of {len(wave)} device(s) failed, over the "
                          f"{rollout.max_failure_percent:g}% allowed")
        audit.record(session, actor=f"rollout:{rollout.id}", action="rollout.halt", target=str(rollout.id),
                     details={"reason": rollout.reason})
        for rd in rds:
            if rd.state == "pending":
                rd.reason = "not started: the rollout halted"
        return _roll_back(session, rollout, rds, now) if rollout.rollback_on_halt else []
    if rollout.current_wave >= rollout.waves:
        rollout.state, rollout.finished_at, rollout.reason = "succeeded", now, None
    else:
        rollout.current_wave += 1
    return []


def _roll_back(session: Session, rollout: Rollout, rds: list[RolloutDevice], now: datetime) -> list[str]:
    """Set every started device's desired model back to the one it had, unless someone changed it since."""
    changed = []
    for rd in rds:
        device = session.get(Device, rd.device_id)
        desired = desired_of(device.desired) if device is not None and device.active else None
        if rd.started_at is None or desired is None or desired.model is None \
                or desired.model.sha256 != rollout.model_sha256:
            continue
        previous = ModelRef.model_validate(rd.previous_model) if rd.previous_model else None
        patch_twin(session, rd.device_id, TwinPatch(model=previous), actor=f"rollout:{rollout.id}")
        changed.append(rd.device_id)
        if rd.state in ("succeeded", "updating"):
            _finish(rd, "rolled_back", f"rollout halted: {rollout.reason}", now)
        else:
            rd.reason = f"{rd.reason}; model set back after the halt"[:1000]
    return changed


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
