"""POST /enroll: the one unauthenticated change; the enrollment token is the credential."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import ValidationError

from edgefleet.protocol import EnrollRequest, EnrollResponse
from fleet_server.api.deps import FleetDep, SessionDep
from fleet_server.api.errors import responses
from fleet_server.api.ratelimit import EnrollLimiter, Source
from fleet_server.errors import FleetError, InvalidInput, RateLimited, TokenInvalid
from fleet_server.services import enrollment

router = APIRouter(tags=["enrollment"])


def parse_enroll_request(data: Any) -> EnrollRequest:
    """Validate by hand so a malformed or missing *token* is a 401 like any other bad token, not a 422."""
    try:
        return EnrollRequest.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        if not isinstance(data, dict) or any(e.get("loc", ())[:1] == ("token",) for e in errors):
            raise TokenInvalid("malformed or missing enrollment token") from None
        first = errors[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidInput(f"invalid enrollment request: {where}: {first.get('msg')}") from None


@router.post(
    "/enroll", response_model=EnrollResponse,
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/json": {"schema": EnrollRequest.model_json_schema()}}}},
    responses=responses(400, 401, 403, 413, 422, 429),
)
def enroll(request: Request, payload: Annotated[Any, Body()], session: SessionDep, fleet: FleetDep) -> EnrollResponse:
    """Enroll a device: checks the token, signs the CSR (CN = new device id), returns certificate, CA,
    signing key, broker URL and MQTT credentials. On any refusal nothing is created and no use is taken.
    Refusals are counted per client address and token id; past a burst of them, 429 until the count drains."""
    limiter: EnrollLimiter = request.app.state.enroll_limiter
    source = Source.of(request.client.host if request.client else None,
                       payload.get("token") if isinstance(payload, dict) else None)
    try:
        limiter.check(source)
    except RateLimited as exc:
        fleet.metrics.refused(exc.kind)
        raise
    try:
        response = enrollment.enroll(session, parse_enroll_request(payload), fleet.enroll_context())
    except FleetError:
        limiter.refused(source)
        raise
    session.commit()
    fleet.after_enroll(response.device_id)  # its broker login is live when this answer leaves
    return response
