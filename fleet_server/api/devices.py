"""The device inventory: list and inspect (viewer), decommission (operator)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from fleet_server.api.deps import DeviceId, FleetDep, OperatorKey, SessionDep, ViewerKey, reveals_secrets
from fleet_server.api.errors import responses
from fleet_server.errors import InvalidInput
from fleet_server.schemas import DeviceView
from fleet_server.telemetry_job import retention_of
from fleet_server.services import apikeys, devices, telemetry_query
from fleet_server.services.telemetry_query import Step
from fleet_server.services.views import device_view, shown

router = APIRouter(prefix="/devices", tags=["devices"], responses=responses(401, 403, 413))
TagFilter = Annotated[str, Field(pattern=r"^[^=]+=", description="key=value")]  # in the schema, so clients know
TagQuery = Annotated[list[TagFilter], Query(description="key=value; repeat to require several")]


def parse_tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"tag filter {pair!r} must look like key=value")
        tags[key] = value
    return tags


@router.get("", response_model=list[DeviceView], responses=responses(422))
def list_devices(session: SessionDep, key: ViewerKey,
                 tag: TagQuery = [],  # noqa: B006 - FastAPI copies defaults
                 include_decommissioned: bool = False) -> list[DeviceView]:
    found = devices.list_devices(session, tags=parse_tags(tag), include_decommissioned=include_decommissioned)
    return [device_view(d, reveal=reveals_secrets(key)) for d in found]


@router.get("/{device_id}", response_model=DeviceView, responses=responses(404))
def get_device(session: SessionDep, key: ViewerKey, device_id: DeviceId) -> DeviceView:
    return device_view(devices.get_device(session, device_id), reveal=reveals_secrets(key))


@router.get("/{device_id}/telemetry", response_model=list[dict[str, Any]], responses=responses(404, 422))
def device_telemetry(session: SessionDep, fleet: FleetDep, key: ViewerKey, device_id: DeviceId, response: Response,
                     since: Annotated[datetime | None, Query(description="from this time (inclusive)")] = None,
                     until: Annotated[datetime | None, Query(description="up to this time (inclusive)")] = None,
                     step: Annotated[Step | None, Query(description="raw snapshots, or 1-minute or 1-hour buckets; "
                                                        "absent: picked from the range (header X-Telemetry-Step)")
                                     ] = None,
                     limit: Annotated[int, Query(ge=1, le=10_000, description="newest first")] = 100
                     ) -> list[dict[str, Any]]:
    """The device's telemetry (DESIGN.md 5), newest first: raw snapshots, or buckets `{ts, step, samples,
    last_ts, stats: {field: {avg, min, max, last}}}`. Without since, until and step: the latest snapshots."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
    used, points = telemetry_query.telemetry(session, device_id, since=since, until=until, step=step,
                                             now=datetime.now(timezone.utc),
                                             retention=retention_of(fleet.settings), limit=limit)
    response.headers["X-Telemetry-Step"] = used
    return shown(points, reveals_secrets(key)) if used == "raw" else points


@router.delete("/{device_id}", response_model=DeviceView, responses=responses(404, 409))
def decommission(session: SessionDep, fleet: FleetDep, key: OperatorKey, device_id: DeviceId) -> DeviceView:
    """Revoke the device's MQTT credentials and certificate (CRL), clear its retained desired twin, and keep
    its row marked decommissioned."""
    device = devices.decommission(session, device_id, actor=apikeys.actor_of(key))
    session.commit()
    fleet.after_decommission(device_id)
    return device_view(device)
