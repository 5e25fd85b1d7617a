"""HTTP request/response bodies. Protocol messages (twin, enroll) come from `edgefleet.protocol`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from edgefleet.protocol import ModelRef
from edgefleet.protocol.enrollment import PRINTABLE, json_depth_at_most

Role = Literal["admin", "operator", "viewer"]
TWIN_PATCH_MAX_DEPTH = 16  # the stored twin is serialised by pydantic, which gives up past ~255 levels (a 500)
# Free-form JSON that is stored and shown again: bounded depth, and only text every answer can encode.
_Shallow = Annotated[dict[str, Any], AfterValidator(json_depth_at_most(TWIN_PATCH_MAX_DEPTH))]
_Tags = Annotated[dict[str, str], AfterValidator(json_depth_at_most(1))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TokenCreate(_In):
    ttl_s: int | None = Field(None, gt=0, le=366 * 86400,
                              description="seconds until the token expires; default: the server's token_default_ttl_s")
    uses: int = Field(1, ge=1, le=100_000, description="how many devices may enroll with it")
    tags: _Tags = Field(default_factory=dict, description="tags every device enrolled with it gets")


class TokenInfo(_Out):
    id: str = Field(description="public id; the secret part is never stored or shown again")
    uses_left: int
    uses_total: int
    expires_at: datetime
    tags: dict[str, str]
    created_by: str
    created_at: datetime


class TokenCreated(TokenInfo):
    token: str = Field(description="the enrollment token; shown once")


class TwinPatch(_In):
    """A partial desired state. Absent fields stay; `model: null` / `camera: null` clear; `pipeline` merges
    field by field; `properties` merges key by key and a `null` value deletes that key."""

    model: ModelRef | None = None
    pipeline: _Shallow | None = None
    camera: str | None = None
    properties: _Shallow | None = None


class DeviceView(_Out):
    id: str
    name: str | None
    tags: dict[str, str]
    status: str = Field(description="online | offline (retained status and Last Will) | decommissioned")
    online: bool
    agent_version: str | None
    last_seen: datetime | None
    enrolled_at: datetime
    decommissioned_at: datetime | None
    desired: dict[str, Any] | None
    desired_revision: int
    reported: dict[str, Any] | None
    reported_at: datetime | None
    in_sync: bool | None = Field(description="reported state matches desired; null when nothing is desired yet")
    hardware: dict[str, Any]
    cert_serial: str | None


class ApiKeyCreate(_In):
    role: Role
    name: str = Field(min_length=1, max_length=64, pattern=PRINTABLE,
                      description="who or what uses the key (1-64 characters, no control characters)")


class ApiKeyInfo(_Out):
    id: int
    prefix: str
    role: Role
    name: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyInfo):
    key: str = Field(description="the API key; shown once")


class AuditView(_Out):
    id: int
    ts: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]


class ErrorItem(BaseModel):
    """One problem in a request that did not validate. The offending input is not echoed back: it may be
    large, or a secret sent in the wrong field."""

    loc: list[str | int] = Field(description="where: body, query, path or header, then field names / indexes")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. missing, string_too_long, int_parsing")


class ErrorBody(BaseModel):
    """The body of every error answer (4xx and 5xx), whatever raised it: one shape for clients to read."""

    detail: str = Field(min_length=1, description="what went wrong, in words fit to show the caller")
    error: str = Field(description="the kind of error: TokenInvalid, NotFound, RateLimited, RequestValidationError...")
    errors: list[ErrorItem] | None = Field(None, description="for request validation errors: each problem found")


class Health(BaseModel):
    ok: bool
    database: bool
    broker_connected: bool
    broker_url: str
