"""The one place server errors become HTTP status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fleet_server.errors import Conflict, FleetError, Forbidden, InvalidInput, NotFound, Unauthorized, Unavailable

STATUS: dict[type[FleetError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    Unavailable: 503,
}


def status_for(exc: FleetError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FleetError)
    code = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=code, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(FleetError, _handle)
