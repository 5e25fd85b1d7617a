"""Render nats-server's configuration for the fleet's private MQTT broker.

One file, `nats.conf`, with everything but the users; the users live in `users.conf`, included inside
the `authorization` block, so adding a device rewrites only that file. The MQTT listener binds the given host
(127.0.0.1 by default; any other address only with TLS); the NATS client port exists only because nats-server
always opens one, nothing of ours uses it, and it stays on loopback. JetStream is required by NATS's MQTT listener (sessions, QoS 1 and retained
messages live in JetStream streams), so its store is under the state directory and survives restarts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet.files import atomic_write
from edgefleet.trust import is_loopback_host

DEFAULT_MQTT_PORT = 18830
CLIENT_HOST = "127.0.0.1"  # the NATS client port nothing of ours uses: never on the network
_BAD_CHARS = re.compile(r'["\\\n\r]')
_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class NatsLimits:
    """Resource limits. `auth_timeout_s` closes a socket that never completes CONNECT, so idle sockets
    cannot pin connection slots; `max_payload` must exceed the largest OTA block (1 MiB) plus headers."""

    max_payload: int = 2 * 1024 * 1024
    max_connections: int = 65536
    auth_timeout_s: float = 3.0
    ack_wait_s: float = 30.0
    max_ack_pending: int = 4096
    log_size_limit: int = 10 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.max_ack_pending <= 65535:
            raise ValueError("max_ack_pending must be 1..65535 (NATS's MQTT limit per session)")
        if self.max_payload <= 0 or self.max_connections <= 0:
            raise ValueError("max_payload and max_connections must be positive")
        if self.auth_timeout_s <= 0 or self.ack_wait_s <= 0:
            raise ValueError("timeouts must be positive")


@dataclass(frozen=True)
class NatsConfig:
    """Where the broker keeps its files and what it listens on. Port 0 means "any free port"."""

    state_dir: Path
    host: str = "127.0.0.1"
    mqtt_port: int = DEFAULT_MQTT_PORT
    client_port: int = 0
    server_name: str = "edgefleet"
    limits: NatsLimits = field(default_factory=NatsLimits)
    tls_cert: Path | None = None  # with tls_key: the MQTT listener speaks TLS only
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        for port in (self.mqtt_port, self.client_port):
            if not 0 <= port <= 65535:
                raise ValueError(f"port {port} out of range 0..65535")
        if not _SERVER_NAME.match(self.server_name):
            raise ValueError(f"server name {self.server_name!r}: use 1-64 of A-Z a-z 0-9 _ -")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("the broker's TLS certificate and key go together")
        if self.tls_cert is None and not is_loopback_host(self.host):
            raise ValueError(f"the embedded broker may bind {self.host}, which is not loopback, only with TLS: "
                             "device passwords would otherwise cross the network in clear")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def config_path(self) -> Path:
        return self.state_dir / "nats.conf"

    @property
    def users_path(self) -> Path:
        return self.state_dir / "users.conf"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "nats.log"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "nats.pid"

    @property
    def store_dir(self) -> Path:
        return self.state_dir / "store"


def quote(value: str) -> str:
    """A double-quoted NATS config string. Quoting keeps `$` literal (bcrypt hashes start with `$2b$`,
    which unquoted would be read as a variable); the few characters that would need escapes are refused."""
    if _BAD_CHARS.search(value):
        raise ValueError(f"{value!r} holds a quote, backslash or newline, which the NATS config cannot take")
    return f'"{value}"'


def _port(port: int) -> int:
    """NATS reads port 0 as "the default port" and -1 as "any free port"."""
    return -1 if port == 0 else port


def _tls_block(cfg: NatsConfig) -> list[str]:
    """TLS for the MQTT listener: server certificate only. Devices log in with their password over it, so it
    asks for no client certificate (`verify` off); TLS 1.2 at least, which is also what paho is capped at."""
    if cfg.tls_cert is None or cfg.tls_key is None:
        return []
    return ["  tls {", f"    cert_file: {quote(str(cfg.tls_cert.resolve()))}",
            f"    key_file: {quote(str(cfg.tls_key.resolve()))}", '    min_version: "1.2"', "  }"]


def render_config(cfg: NatsConfig) -> str:
    """The text of nats.conf for `cfg`."""
    lim = cfg.limits
    state = cfg.state_dir.resolve()
    lines = [
        f"server_name: {quote(cfg.server_name)}",
        f"host: {quote(CLIENT_HOST)}",
        f"port: {_port(cfg.client_port)}",
        f"pid_file: {quote(str(state / cfg.pid_path.name))}",
        f"log_file: {quote(str(state / cfg.log_path.name))}",
        f"logfile_size_limit: {lim.log_size_limit}",
        f"max_payload: {lim.max_payload}",
        f"max_connections: {lim.max_connections}",
        "jetstream {",
        f"  store_dir: {quote(str(state / cfg.store_dir.name))}",
        "}",
        "mqtt {",
        f"  listen: {quote(f'{cfg.host}:{_port(cfg.mqtt_port)}')}",
        f"  ack_wait: {quote(f'{lim.ack_wait_s:g}s')}",
        f"  max_ack_pending: {lim.max_ack_pending}",
        *_tls_block(cfg),
        "}",
        "authorization {",
        f"  timeout: {lim.auth_timeout_s:g}",
        f"  include {quote(cfg.users_path.name)}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def write_config(cfg: NatsConfig) -> Path:
    """Write nats.conf (0600: it names every file the broker owns) and make the state directory."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    cfg.store_dir.mkdir(exist_ok=True)
    atomic_write(cfg.config_path, render_config(cfg), 0o600)
    return cfg.config_path
