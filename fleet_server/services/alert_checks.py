"""The alert rules' conditions: each looks at what the server stored about a device (status, last seen, the
newest telemetry snapshot, the reported twin) or a rollout, at an explicit `now`, and says whether its rule fires
and why. The lifecycle (firing, resolved, acknowledged) is services.alerts'; these only judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet_server.db.models import Device, Rollout, TelemetryRow
from fleet_server.services import alert_rules as r

DEFAULT_TELEMETRY_INTERVAL_S = 10.0  # the protocol's PipelineConfig default
CAMERA_GONE = frozenset({"reconnecting", "waiting_for_device"})  # edge_agent.engine.capture_state
UPDATE_FAILED = frozenset({"failed", "rolled_back"})


@dataclass(frozen=True)
class Finding:
    message: str
    value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def telemetry_interval_s(device: Device) -> float:
    pipeline = (device.desired or {}).get("pipeline") or {}
    value = pipeline.get("telemetry_interval_s")
    return float(value) if isinstance(value, (int, float)) and value > 0 else DEFAULT_TELEMETRY_INTERVAL_S


def offline(device: Device, rule: r.DeviceOffline, now: datetime) -> Finding | None:
    """A device never seen is not alerted on (it was enrolled and not started yet)."""
    if device.last_seen is None:
        return None
    if device.status == "offline":
        return Finding("device is offline (its status, or its Last Will)",
                       details={"last_seen": device.last_seen.isoformat()})
    interval = telemetry_interval_s(device)
    silent = (now - device.last_seen).total_seconds()
    if silent > rule.missed_periods * interval:
        return Finding(f"nothing heard for {silent:.0f} s ({rule.missed_periods} telemetry periods of {interval:g} s)",
                       value=silent, details={"last_seen": device.last_seen.isoformat()})
    return None


def _latest(device: Device) -> dict[str, Any]:
    return device.last_telemetry or {}


def camera(device: Device, rule: r.CameraDisconnected) -> Finding | None:
    state = _latest(device).get("camera_state")
    if state in CAMERA_GONE:
        return Finding(f"camera {_latest(device).get('camera_id') or ''} is {state}".replace("  ", " "),
                       details={"camera_state": state})
    return None


def fps_low(device: Device, rule: r.FpsLow) -> Finding | None:
    snapshot = _latest(device)
    fps = snapshot.get("fps")
    if snapshot.get("camera_state") == "streaming" and isinstance(fps, (int, float)) and fps < rule.min_fps:
        return Finding(f"{fps:g} fps, under {rule.min_fps:g}", value=float(fps))
    return None


def temperature(device: Device, rule: r.TemperatureHigh) -> Finding | None:
    value = _latest(device).get("temperature_c")
    if isinstance(value, (int, float)) and value > rule.max_c:
        return Finding(f"{value:g} C, over {rule.max_c:g} C", value=float(value))
    return None


def outbox_dropping(session: Session, device: Device, rule: r.OutboxDropping, now: datetime) -> Finding | None:
    """Compares the newest snapshot's `outbox_dropped` with the oldest one kept within the window. The counter
    restarts with the agent: an older snapshot with more uptime belongs to a previous run, and an agent that
    started within the window dropped all it counts within it."""
    latest = _latest(device)
    dropped, uptime = latest.get("outbox_dropped") or 0, latest.get("uptime_s") or 0.0
    if not dropped:
        return None
    oldest = session.scalars(sa.select(TelemetryRow).where(
        TelemetryRow.device_id == device.id, TelemetryRow.ts >= now - timedelta(seconds=rule.window_s),
        TelemetryRow.ts < device.last_telemetry_at).order_by(TelemetryRow.ts, TelemetryRow.id).limit(1)).one_or_none()
    if oldest is not None and (oldest.payload.get("uptime_s") or 0.0) <= uptime:
        baseline = oldest.payload.get("outbox_dropped") or 0
    else:
        baseline = 0 if uptime <= rule.window_s else dropped
    grew = dropped - baseline
    if grew > 0:
        return Finding(f"outbox dropped {grew} message(s) within {rule.window_s:g} s (offline too long, or full)",
                       value=float(grew), details={"outbox_dropped": dropped})
    return None


def update_failed(device: Device, rule: r.UpdateFailed) -> Finding | None:
    update = ((device.reported or {}).get("properties") or {}).get("update")
    if isinstance(update, dict) and update.get("state") in UPDATE_FAILED:
        sha = str(update.get("sha256") or "")[:12]
        return Finding(f"model update {sha} {update['state']}: {update.get('reason') or 'no reason given'}",
                       details={"update": update})
    return None


def halted_rollouts(session: Session) -> dict[str, tuple[Rollout, Finding]]:
    """Halted rollouts no later rollout to the same target superseded, by subject `rollout:ID`."""
    rollouts = list(session.scalars(sa.select(Rollout).order_by(Rollout.id)))
    newest_for_target = {ro.target: ro.id for ro in rollouts}
    return {f"rollout:{ro.id}": (ro, Finding(f"rollout {ro.id} of {ro.model_name}:{ro.model_version} to "
                                             f"{ro.target} halted: {ro.reason or 'no reason given'}",
                                             details={"rollout_id": ro.id, "target": ro.target}))
            for ro in rollouts if ro.state == "halted" and newest_for_target[ro.target] == ro.id}
