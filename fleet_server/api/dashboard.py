"""The dashboard: static files from the package (`fleet_server/dashboard/`), no build step, nothing fetched from
elsewhere. `/` is its page; its modules, styles and icons are under `/dashboard/`. It reads the same API as every
other client, with the key a person types in (held in the browser tab's sessionStorage)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"


def install(app: FastAPI) -> None:
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR), name="dashboard")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(DASHBOARD_DIR / "index.html", headers={"Cache-Control": "no-cache"})
