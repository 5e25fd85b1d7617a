"""Alerts (list: viewer; acknowledge: operator) and their rule settings (read: viewer; change: operator).
The evaluator (fleet_server.alert_evaluator) fires and resolves alerts; these routes only read and acknowledge."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from edgefleet.protocol.enrollment import PRINTABLE
from fleet_server.api.deps import FleetDep, OperatorKey, SessionDep, ViewerKey
from fleet_server.api.errors import responses
from fleet_server.services import alert_rules, alerts, apikeys

router = APIRouter(tags=["alerts"], responses=responses(401, 403, 413))
AlertId = Annotated[int, Path(ge=1, le=2**31 - 1)]
RuleName = Annotated[str, Field(max_length=32)]


class AlertView(BaseModel):
    id: int
    rule: str = Field(description=", ".join(alert_rules.RULES))
    subject: str = Field(description="the device id, or rollout:ID")
    device_id: str | None
    state: str = Field(description="firing | resolved")
    message: str
    value: float | None = Field(description="the measured value that fired it, where there is one")
    details: dict[str, Any]
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None


class RuleLayer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str | None = Field(None, max_length=300, pattern=PRINTABLE,
                            description="key=value, or null for the fleet-wide layer")
    rules: dict[RuleName, dict[str, Any]] = Field(
        description="rule name -> the fields this layer sets (enabled, and the rule's thresholds); "
                    "an empty object removes the layer")


class RuleLayerView(RuleLayer):
    updated_by: str
    updated_at: datetime


class AlertRulesView(BaseModel):
    builtin: dict[str, dict[str, Any]] = Field(description="every rule's built-in settings")
    defaults: dict[str, dict[str, Any]] = Field(description="the built-in settings with the fleet-wide layer: "
                                                            "what a device without a matching tag layer gets")
    overrides: list[RuleLayerView] = Field(description="the stored layers; a device carrying several tags gets "
                                                       "their layers in the order of the tag text")


@router.get("/alerts", response_model=list[AlertView], responses=responses(422))
def list_alerts(session: SessionDep, _key: ViewerKey,
                state: Annotated[str | None, Query(pattern="^(firing|resolved)$")] = None,
                device_id: Annotated[str | None, Query(max_length=63, pattern=PRINTABLE)] = None,
                acked: Annotated[bool | None, Query(description="only acknowledged (true) or not (false)")] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AlertView]:
    """Newest first."""
    found = alerts.list_alerts(session, state=state, device_id=device_id, acked=acked, limit=limit)
    return [AlertView(**alerts.alert_view(a)) for a in found]


@router.post("/alerts/{alert_id}/ack", response_model=AlertView, responses={
    **responses(404, 409, 422), 409: {**responses(409)[409], "description": "already acknowledged"}})
def acknowledge(session: SessionDep, fleet: FleetDep, key: OperatorKey, alert_id: AlertId) -> AlertView:
    """Mark the alert seen (who, when; audited as `alert.ack`). It keeps firing until its condition clears."""
    transition = alerts.acknowledge(session, alert_id, actor=apikeys.actor_of(key), now=datetime.now(timezone.utc))
    session.commit()
    if fleet.alerts is not None:
        fleet.alerts.announce(transition)
    return AlertView(**transition.alert)


@router.get("/alert-rules", response_model=AlertRulesView)
def get_rules(session: SessionDep, _key: ViewerKey) -> AlertRulesView:
    return AlertRulesView(**alert_rules.view(session))


@router.put("/alert-rules", response_model=AlertRulesView, responses=responses(400, 422))
def put_rules(body: RuleLayer, session: SessionDep, key: OperatorKey) -> AlertRulesView:
    """Replace one layer: the fleet-wide one (`tag` null) or one tag's. Unknown rules or fields, and values out
    of range, are refused (422) and change nothing. Audited as `alert_rules.update`."""
    alert_rules.put_layer(session, body.tag, body.rules, actor=apikeys.actor_of(key))
    session.commit()
    return AlertRulesView(**alert_rules.view(session))
