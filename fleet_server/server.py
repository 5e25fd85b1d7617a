"""Run a whole server (HTTP API + broker + bridge) on a background thread: for `edgefleet server run`,
`edgefleet demo` and tests. Port 0 in the settings means a free port; the handle says which were bound."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from fleet_server.app import create_app
from fleet_server.fleet import PKI_DIR, Fleet, admin_key_path
from fleet_server.pki import CaIncomplete, CertificateAuthority
from fleet_server.settings import ServerSettings
from fleet_server.tls_identity import https_identity


class ServerStartError(RuntimeError):
    """The server could not start (port taken, database unreachable, broker failed)."""


@dataclass
class ServerHandle:
    url: str
    settings: ServerSettings
    fleet: Fleet
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def admin_key(self) -> str | None:
        return self.fleet.admin_key

    @property
    def admin_key_created(self) -> bool:
        """True on the first start, when the admin key was just made (print it once)."""
        return self.fleet.admin_key_created

    @property
    def admin_key_file(self) -> str:
        return str(admin_key_path(self.settings.state_dir))

    @property
    def broker_url(self) -> str:
        return self.fleet.public_broker_url

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        self.fleet.events.close()  # uvicorn waits for open responses, and an event stream never ends by itself
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def _https_files(settings: ServerSettings) -> tuple[Path, Path] | None:
    """(cert, key) for HTTPS, or None for plain HTTP (loopback only, unless allowed: see ServerSettings).
    The CA is loaded here, before the lifespan opens the Fleet, because uvicorn needs the files to start."""
    if not settings.https:
        return None
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        return https_identity(settings, CertificateAuthority.load_or_create(settings.state_dir / PKI_DIR))
    except (CaIncomplete, OSError, ValueError) as exc:
        raise ServerStartError(f"cannot set up HTTPS: {exc}") from exc


def start_server_in_thread(settings: ServerSettings, *, start_mqtt: bool = True, log_level: str = "warning",
                           timeout: float = 60.0) -> ServerHandle:
    """Start and wait until the API answers and the lifespan (broker, bridge) is up; raise ServerStartError
    with the cause otherwise."""
    tls = _https_files(settings)
    sock = _bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    app = create_app(settings, start_mqtt=start_mqtt)
    ssl_options = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on", **ssl_options))
    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except SystemExit:  # uvicorn exits on a failed lifespan start-up; the cause is in startup_error
            pass

    thread = threading.Thread(target=serve, name="edgefleet-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        server.should_exit = True
        thread.join(10)
        sock.close()
        cause = getattr(app.state, "startup_error", None)
        raise ServerStartError(f"server did not start: {cause or 'timed out'}") from cause
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = settings.public_url or f"{'https' if tls else 'http'}://{shown}:{port}"
    return ServerHandle(url=url.rstrip("/"), settings=settings, fleet=app.state.fleet, _server=server,
                        _thread=thread)
