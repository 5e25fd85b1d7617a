"""The one place server errors become HTTP answers: the status code of each error, and the one body every
error answer carries (`ErrorBody`), whether the error is ours, a request that did not validate, Starlette's
own 404/405/400, the body size limit or an unexpected exception. `responses()` documents them in OpenAPI
with that same model, so the schema says what the server really sends."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet_server.errors import (
    Conflict,
    FleetError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from fleet_server.schemas import ErrorBody, ErrorItem

STATUS: dict[type[FleetError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    InvalidInput: 422,
    RateLimited: 429,
    Unavailable: 503,
}
VALIDATION_ERROR = "RequestValidationError"
_SHOWN_PROBLEMS = 3  # the detail names the first few; `errors` lists them all

_DESCRIPTIONS: dict[int, str] = {
    400: "the body could not be parsed (not UTF-8, or nested too deeply for the JSON parser)",
    401: "missing, malformed, unknown or revoked credential (an API key; for enrollment, the token)",
    403: "a genuine credential that may not do this (role too low; enrollment token expired or used up)",
    404: "no such device or key",
    409: "clashes with the current state (device decommissioned, last admin key)",
    413: "request body over the server's size limit (setting max_body_bytes)",
    422: "a parameter or body that does not validate; `errors` lists each problem",
    429: "too many refused attempts from this address or for this token; retry after Retry-After seconds",
    503: "a dependency is not reachable right now",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds until an attempt may succeed", "schema": {"type": "integer"}}},
}


def status_for(exc: FleetError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_response(status: int, detail: str, error: str, *, errors: Sequence[ErrorItem] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer for any error; an empty detail becomes the status phrase so `detail` is never empty."""
    body = ErrorBody(detail=detail or HTTPStatus(status).phrase, error=error,
                     errors=list(errors) if errors is not None else None)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers)


def fleet_error_response(exc: FleetError) -> JSONResponse:
    code = status_for(exc)
    headers: dict[str, str] = {}
    if code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    return error_response(code, str(exc), type(exc).__name__, headers=headers or None)


def _problem(raw: dict[str, Any]) -> ErrorItem:
    msg = str(raw.get("msg", "invalid"))
    reason = (raw.get("ctx") or {}).get("error")
    if raw.get("type") == "json_invalid" and reason:
        msg = f"{msg} ({reason})"
    loc = [p if isinstance(p, int) else str(p) for p in raw.get("loc", ())]
    return ErrorItem(loc=loc, msg=msg, type=str(raw.get("type", "value_error")))


def validation_detail(problems: Sequence[ErrorItem]) -> str:
    """One readable line for clients that only show `detail` (the CLI does)."""
    parts = [f"{'.'.join(str(p) for p in item.loc) or 'request'}: {item.msg}" for item in problems[:_SHOWN_PROBLEMS]]
    more = len(problems) - _SHOWN_PROBLEMS
    return "invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


async def _fleet_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FleetError)
    return fleet_error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(e) for e in exc.errors()]
    return error_response(422, validation_detail(problems), VALIDATION_ERROR, errors=problems)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own errors: unknown path, method not allowed, a body that does not parse."""
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail or "")
    return error_response(exc.status_code, detail, phrase.title().replace(" ", "").replace("-", ""),
                          headers=dict(exc.headers) if exc.headers else None)


async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
    # Starlette's ServerErrorMiddleware logs and re-raises after sending this, so the traceback is not lost.
    return error_response(500, "internal server error", "InternalError")


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for these error codes, all with the one error body."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        documented[code] = {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        if code in _HEADERS:
            documented[code]["headers"] = _HEADERS[code]
    return documented


def drop_framework_validation_docs(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a 422 with its own `HTTPValidationError` body on every operation that has parameters,
    even ones that cannot fail to validate (a plain string in the path), and that body is not what the server
    sends. Each 422 that can happen is documented by `responses()`; drop FastAPI's and its two schemas."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            ref = answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
            if ref.endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema


def install(app: FastAPI) -> None:
    app.add_exception_handler(FleetError, _fleet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
