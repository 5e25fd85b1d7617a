"""A small HTTP client for the CLI: talks to a running server with an API key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edgefleet import paths
from fleet_server.fleet import admin_key_path

DEFAULT_SERVER = "http://127.0.0.1:8080"


class ClientError(Exception):
    """The server refused a request or could not be reached; `status` is the HTTP code (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def resolve_api_key(api_key: str | None, state_dir: Path | None = None) -> str | None:
    """`--api-key` (or `--api-key-file`, read by the CLI), else `$EDGEFLEET_API_KEY`, else the local
    server's first admin key file."""
    if api_key:
        return api_key
    if os.environ.get("EDGEFLEET_API_KEY"):
        return os.environ["EDGEFLEET_API_KEY"]
    key_file = admin_key_path(state_dir or paths.default_state_dir() / "server")
    return key_file.read_text().strip() if key_file.exists() else None


@dataclass
class FleetClient:
    server: str
    api_key: str | None
    timeout: float = 30.0

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = self.server.rstrip("/") + "/api/v1" + path
        try:
            r = httpx.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the server at {self.server}: {exc}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            if not isinstance(detail, str):
                detail = str(detail)
            raise ClientError(f"{r.status_code}: {detail}", r.status_code)
        return r.json() if r.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
