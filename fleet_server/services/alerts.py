"""The alerts' lifecycle, all in the database so a restarted server carries on: one evaluation judges every
rule for every active device and halted rollout (services.alert_checks) and moves alerts `firing` -> `resolved`;
an operator acknowledges one (kept beside its state, audited). At most one alert per rule and subject fires.

While a device is offline its telemetry rules are not judged (their alerts stay as they were): its newest
snapshot is old news, neither a reason to fire nor proof that a problem went away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet_server.db.models import Alert, Device
from fleet_server.errors import Conflict, NotFound
from fleet_server.services import alert_checks as checks
from fleet_server.services import alert_rules, audit
from fleet_server.services.alert_checks import Finding
from fleet_server.services.devices import list_devices

STATES = ("firing", "resolved")
TELEMETRY_RULES = ("camera_disconnected", "fps_low", "temperature_high", "outbox_dropping")


@dataclass(frozen=True)
class Transition:
    """`firing`, `resolved` or `acknowledged`, with the alert's view after it."""

    transition: str
    alert: dict[str, Any]


def alert_view(alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "rule": alert.rule, "subject": alert.subject, "device_id": alert.device_id,
            "state": alert.state, "message": alert.message, "value": alert.value, "details": alert.details or {},
            "started_at": alert.started_at, "updated_at": alert.updated_at, "resolved_at": alert.resolved_at,
            "acked_at": alert.acked_at, "acked_by": alert.acked_by}


class _Pass:
    """One evaluation: the firing alerts it found, and the transitions it made."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.now = session, now
        firing = session.scalars(sa.select(Alert).where(Alert.state == "firing").order_by(Alert.id))
        self.firing: dict[tuple[str, str], Alert] = {(a.subject, a.rule): a for a in firing}
        self.judged: set[tuple[str, str]] = set()
        self.transitions: list[tuple[str, Alert]] = []

    def apply(self, subject: str, rule: str, device_id: str | None, finding: Finding | None) -> None:
        self.judged.add((subject, rule))
        alert = self.firing.get((subject, rule))
        if finding is not None and alert is None:
            alert = Alert(rule=rule, subject=subject, device_id=device_id, state="firing",
                          message=finding.message[:1000], value=finding.value, details=finding.details,
                          started_at=self.now, updated_at=self.now)
            self.session.add(alert)
            self.firing[(subject, rule)] = alert
            self.transitions.append(("firing", alert))
        elif finding is not None and alert is not None:
            if (alert.message, alert.value) != (finding.message[:1000], finding.value):
                alert.message, alert.value, alert.details = finding.message[:1000], finding.value, finding.details
                alert.updated_at = self.now
        elif alert is not None:
            self.resolve(alert, None)

    def keep(self, subject: str, rule: str) -> None:
        self.judged.add((subject, rule))

    def resolve(self, alert: Alert, why: str | None) -> None:
        alert.state, alert.resolved_at, alert.updated_at = "resolved", self.now, self.now
        if why:
            alert.details = {**(alert.details or {}), "resolved_because": why}
        self.transitions.append(("resolved", alert))


def _judge_device(p: _Pass, device: Device, rules: alert_rules.Settings) -> None:
    def judge(rule: str, check: Callable[[], Finding | None]) -> None:
        p.apply(device.id, rule, device.id, check() if rules[rule].enabled else None)

    offline = checks.offline(device, rules["device_offline"], p.now)
    p.apply(device.id, "device_offline", device.id, offline if rules["device_offline"].enabled else None)
    judge("update_failed", lambda: checks.update_failed(device, rules["update_failed"]))
    if offline is not None:
        for rule in TELEMETRY_RULES:
            p.keep(device.id, rule)
        return
    judge("camera_disconnected", lambda: checks.camera(device, rules["camera_disconnected"]))
    judge("fps_low", lambda: checks.fps_low(device, rules["fps_low"]))
    judge("temperature_high", lambda: checks.temperature(device, rules["temperature_high"]))
    judge("outbox_dropping", lambda: checks.outbox_dropping(p.session, device, rules["outbox_dropping"], p.now))


def evaluate(session: Session, now: datetime) -> list[Transition]:
    """Judge every rule once; the caller commits, then tells listeners (the transitions carry the views)."""
    p = _Pass(session, now)
    layers = alert_rules.overrides(session)
    for device in list_devices(session):
        _judge_device(p, device, alert_rules.settings_for(device.tags, layers))
    fleet_rules = alert_rules.settings_for(None, layers)
    halted = checks.halted_rollouts(session) if fleet_rules["rollout_halted"].enabled else {}
    for subject, (_, finding) in halted.items():
        p.apply(subject, "rollout_halted", None, finding)
    for key, alert in list(p.firing.items()):
        if key not in p.judged:  # a decommissioned device; a rollout superseded (or its rule disabled)
            p.resolve(alert, "the device was decommissioned" if alert.device_id else None)
    session.flush()
    return [Transition(kind, alert_view(alert)) for kind, alert in p.transitions]


def acknowledge(session: Session, alert_id: int, *, actor: str, now: datetime) -> Transition:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    if alert.acked_at is not None:
        raise Conflict(f"alert {alert_id} was already acknowledged by {alert.acked_by} at {alert.acked_at}")
    alert.acked_at, alert.acked_by, alert.updated_at = now, actor[:128], now
    audit.record(session, actor=actor, action="alert.ack", target=str(alert_id),
                 details={"rule": alert.rule, "subject": alert.subject})
    session.flush()
    return Transition("acknowledged", alert_view(alert))


def list_alerts(session: Session, *, state: str | None = None, device_id: str | None = None,
                acked: bool | None = None, limit: int = 100) -> list[Alert]:
    """Newest first."""
    q = sa.select(Alert).order_by(Alert.id.desc()).limit(limit)
    if state is not None:
        q = q.where(Alert.state == state)
    if device_id is not None:
        q = q.where(Alert.device_id == device_id)
    if acked is not None:
        q = q.where(Alert.acked_at.is_not(None) if acked else Alert.acked_at.is_(None))
    return list(session.scalars(q))
