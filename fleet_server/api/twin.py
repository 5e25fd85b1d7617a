"""The device twin: read (viewer) and patch the desired state (operator)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from fleet_server.api.deps import DeviceId, FleetDep, OperatorKey, SessionDep, ViewerKey, reveals_secrets
from fleet_server.api.errors import responses
from fleet_server.schemas import TwinPatch
from fleet_server.services import apikeys, devices, twin
from fleet_server.services.views import shown

router = APIRouter(prefix="/devices/{device_id}/twin", tags=["twin"], responses=responses(401, 403, 404, 413))


class TwinView(BaseModel):
    device_id: str
    desired: dict[str, Any] | None
    desired_revision: int
    reported: dict[str, Any] | None
    in_sync: bool | None
    published: bool | None = Field(None, description="after a patch: whether it reached the broker now (if not, "
                                                     "it is stored and sent on reconnect)")


def _view(device: Any, published: bool | None = None, *, reveal: bool = True) -> TwinView:
    return TwinView(device_id=device.id, desired=shown(device.desired, reveal),
                    desired_revision=device.desired_revision, reported=shown(device.reported, reveal),
                    in_sync=twin.in_sync(twin.desired_of(device.desired), twin.reported_of(device.reported)),
                    published=published)


@router.get("", response_model=TwinView)
def get_twin(session: SessionDep, key: ViewerKey, device_id: DeviceId) -> TwinView:
    return _view(devices.get_device(session, device_id), reveal=reveals_secrets(key))


@router.patch("", response_model=TwinView, responses=responses(400, 409, 422))
def patch_twin(body: TwinPatch, session: SessionDep, fleet: FleetDep, key: OperatorKey,
               device_id: DeviceId) -> TwinView:
    """Merge a partial desired state, bump its revision, store it, then publish it retained to the device."""
    twin.patch_twin(session, device_id, body, actor=apikeys.actor_of(key))
    session.commit()
    published = fleet.publish_desired(device_id)
    return _view(devices.get_device(session, device_id), published)
