"""Alert rule settings: built-in defaults, a fleet-wide layer and one layer per tag, stored in the database.

A device's settings are the built-in defaults, then the fleet-wide layer (tag ''), then the layer of each
`key=value` tag it carries, in the order of the tag text (a later layer wins field by field). A layer names only
the fields it changes, so a default changed later still reaches every device that did not override it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from fleet_server.db.models import AlertRuleOverride
from fleet_server.errors import InvalidInput
from fleet_server.services import audit

FLEET_WIDE = ""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    enabled: bool = True


class DeviceOffline(_Rule):
    """Fires on an `offline` status (the Last Will included), or when nothing came for `missed_periods`
    telemetry periods (the desired pipeline's telemetry_interval_s, 10 s by default)."""

    missed_periods: int = Field(3, ge=1, le=10_000)


class CameraDisconnected(_Rule):
    """Fires while the newest snapshot's `camera_state` is `reconnecting` or `waiting_for_device`."""


class FpsLow(_Rule):
    """Fires while the camera streams and the newest snapshot's fps is under `min_fps`."""

    min_fps: float = Field(1.0, ge=0)


class TemperatureHigh(_Rule):
    """Fires while the newest snapshot's `temperature_c` is over `max_c` (boards that report none never fire)."""

    max_c: float = Field(85.0, ge=-50, le=200)


class OutboxDropping(_Rule):
    """Fires while the agent's `outbox_dropped` counter grew within the last `window_s` seconds."""

    window_s: float = Field(600.0, gt=0, le=7 * 86_400)


class UpdateFailed(_Rule):
    """Fires while the reported `properties.update.state` is `failed` or `rolled_back` (a failed health check)."""


class RolloutHalted(_Rule):
    """Fires for a halted rollout until a later rollout to the same target is created (fleet-wide layer only)."""


RULES: dict[str, type[_Rule]] = {
    "device_offline": DeviceOffline, "camera_disconnected": CameraDisconnected, "fps_low": FpsLow,
    "temperature_high": TemperatureHigh, "outbox_dropping": OutboxDropping, "update_failed": UpdateFailed,
    "rollout_halted": RolloutHalted,
}
Settings = dict[str, _Rule]


def builtin() -> dict[str, dict[str, Any]]:
    return {name: model().model_dump() for name, model in RULES.items()}


def check_tag(tag: str | None) -> str:
    if tag is None or tag == FLEET_WIDE:
        return FLEET_WIDE
    key, sep, value = tag.partition("=")
    if not sep or not key or len(tag) > 300:
        raise InvalidInput(f"tag {tag[:300]!r} must look like key=value (at most 300 characters)")
    return tag


def check_layer(rules: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A layer's rules, each checked against its model (unknown rules or fields, wrong types: InvalidInput),
    with its values as the model reads them ("5" -> 5.0), which is what is stored."""
    checked: dict[str, dict[str, Any]] = {}
    for name, fields in rules.items():
        if name not in RULES:
            raise InvalidInput(f"unknown alert rule {name[:40]!r}; the rules are {', '.join(RULES)}")
        try:
            rule = RULES[name].model_validate({**RULES[name]().model_dump(), **fields})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(f"rule {name}: {'.'.join(map(str, first['loc']))[:80]}: {first['msg']}") from None
        checked[name] = {key: getattr(rule, key) for key in fields}
    return checked


def overrides(session: Session) -> dict[str, dict[str, dict[str, Any]]]:
    return {o.tag: o.rules for o in session.scalars(sa.select(AlertRuleOverride).order_by(AlertRuleOverride.tag))}


def settings_for(tags: dict[str, str] | None, layers: dict[str, dict[str, dict[str, Any]]]) -> Settings:
    """One device's settings (a device of no tags, or None: the fleet-wide ones)."""
    merged = builtin()
    applying = [FLEET_WIDE] + sorted(t for t in layers if t != FLEET_WIDE and _carries(tags or {}, t))
    for tag in applying:
        for name, fields in layers.get(tag, {}).items():
            if name in merged:
                merged[name].update(fields)
    return {name: RULES[name].model_validate(fields) for name, fields in merged.items()}


def _carries(tags: dict[str, str], tag: str) -> bool:
    key, _, value = tag.partition("=")
    return tags.get(key) == value


def put_layer(session: Session, tag: str | None, rules: dict[str, dict[str, Any]], *, actor: str) -> None:
    """Replace one layer (empty rules: remove it). Audited as `alert_rules.update`."""
    tag = check_tag(tag)
    rules = check_layer(rules)
    row = session.get(AlertRuleOverride, tag)
    if not rules:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(AlertRuleOverride(tag=tag, rules=rules, updated_by=actor, updated_at=datetime.now(timezone.utc)))
    else:
        row.rules, row.updated_by, row.updated_at = rules, actor, datetime.now(timezone.utc)
    audit.record(session, actor=actor, action="alert_rules.update", target=tag or "fleet", details={"rules": rules})
    session.flush()


def view(session: Session) -> dict[str, Any]:
    """What GET /alert-rules answers: the built-in defaults, the stored layers, and the fleet-wide result."""
    rows = list(session.scalars(sa.select(AlertRuleOverride).order_by(AlertRuleOverride.tag)))
    layers = {row.tag: row.rules for row in rows}
    return {
        "builtin": builtin(),
        "defaults": {name: rule.model_dump() for name, rule in settings_for(None, layers).items()},
        "overrides": [{"tag": row.tag or None, "rules": row.rules, "updated_by": row.updated_by,
                       "updated_at": row.updated_at} for row in rows],
    }
