"""Shared dependencies: the running Fleet, a database session, and the caller's API key with role checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from edgefleet.protocol import ProtocolError, validate_device_id
from fleet_server.db import ApiKey
from fleet_server.errors import NotFound
from fleet_server.fleet import Fleet
from fleet_server.services import apikeys

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key in the X-API-Key header")


def get_fleet(request: Request) -> Fleet:
    return request.app.state.fleet


FleetDep = Annotated[Fleet, Depends(get_fleet)]


def get_session(fleet: FleetDep) -> Iterator[Session]:
    """A session per request. Routes that change things commit explicitly before publishing to MQTT;
    anything not committed is rolled back here."""
    with fleet.db.sessions() as session:
        try:
            yield session
        finally:
            session.rollback()


SessionDep = Annotated[Session, Depends(get_session)]


def current_key(session: SessionDep,
                bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
                header: Annotated[str | None, Security(_header)] = None) -> ApiKey:
    return apikeys.authenticate(session, bearer.credentials if bearer else header)


def _role(role: str):  # noqa: ANN202 - returns a dependency
    def check(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
        apikeys.require(key, role)
        return key

    check.__name__ = f"require_{role}"
    return check


def device_id_in_path(device_id: str) -> str:
    """A path's device id, checked before any query: one that cannot be an id is not found. Unchecked, a NUL
    character in it reached PostgreSQL, which cannot compare text holding one (a 500)."""
    try:
        return validate_device_id(device_id)
    except ProtocolError:
        raise NotFound(f"no device {device_id!r}") from None


DeviceId = Annotated[str, Depends(device_id_in_path)]


def reveals_secrets(key: ApiKey) -> bool:
    """Operators and admins set camera URLs and see them whole; viewers see their passwords masked."""
    return apikeys.RANK[key.role] >= apikeys.RANK["operator"]


ViewerKey = Annotated[ApiKey, Depends(_role("viewer"))]
OperatorKey = Annotated[ApiKey, Depends(_role("operator"))]
AdminKey = Annotated[ApiKey, Depends(_role("admin"))]
