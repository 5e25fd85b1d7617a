"""A small HTTP client for the CLI: talks to a running server with an API key. It needs only httpx (which the
agent extra has too), so `edgefleet model publish` works from a machine without the server installed."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edgefleet import paths
from edgefleet.extras import is_missing_extra

DEFAULT_SERVER = "http://127.0.0.1:8080"
UPLOAD_READ_TIMEOUT_S = 600.0


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
    key_file = _local_admin_key_file(state_dir or paths.default_state_dir() / "server")
    return key_file.read_text().strip() if key_file is not None and key_file.exists() else None


def _local_admin_key_file(state_dir: Path) -> Path | None:
    """Where a server on this machine keeps its first admin key; None without the server installed (then
    there is no local server, and no key file, to find)."""
    try:
        from fleet_server.fleet import admin_key_path
    except ImportError as exc:
        if not is_missing_extra(exc):
            raise
        return None
    return admin_key_path(state_dir)


def resolve_ca_file(server: str, state_dir: Path | None = None) -> Path | None:
    """The CA an `https://` server is verified against: `$EDGEFLEET_CA_FILE`, else the local server's fleet CA
    (`STATE_DIR/pki/ca.crt`) when there is one, else None (the system's CAs: a certificate given in settings)."""
    if not server.lower().startswith("https://"):
        return None
    if os.environ.get("EDGEFLEET_CA_FILE"):
        return Path(os.environ["EDGEFLEET_CA_FILE"])
    local = (state_dir or paths.default_state_dir() / "server") / "pki" / "ca.crt"
    return local if local.exists() else None


@dataclass
class FleetClient:
    server: str
    api_key: str | None
    timeout: float = 30.0
    ca_file: Path | None = None  # None: resolve_ca_file's choice

    def __post_init__(self) -> None:
        ca_file = self.ca_file or resolve_ca_file(self.server)
        self._verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=str(ca_file))
                                               if ca_file is not None else True)

    def send(self, method: str, path: str, *, headers: dict[str, str] | None = None,
             timeout: float | httpx.Timeout | None = None, **kwargs: Any) -> httpx.Response:
        """The server's answer to a request under /api/v1; ClientError for an error answer or none."""
        sent = {**(headers or {}), **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})}
        url = self.server.rstrip("/") + "/api/v1" + path
        try:
            r = httpx.request(method, url, headers=sent, timeout=timeout or self.timeout, verify=self._verify,
                              **kwargs)
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
        return r

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.send(method, path, **kwargs)
        return r.json() if r.content else None

    def upload(self, path: str, package: Path) -> tuple[int, Any]:
        """POST a file as the raw body, streamed from disk; (status, answer). The server verifies the whole of
        it before it answers, which for a large package takes longer than an ordinary read timeout."""
        with open(package, "rb") as fh:
            r = self.send("POST", path, content=fh, headers={"Content-Type": "application/octet-stream"},
                          timeout=httpx.Timeout(self.timeout, read=UPLOAD_READ_TIMEOUT_S))
        return r.status_code, r.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
