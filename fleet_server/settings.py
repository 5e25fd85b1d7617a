"""Server settings, read once at start-up (from arguments and `EDGEFLEET_*` environment variables) and passed in.

Nothing here is read at import time: `ServerSettings()` is built by the CLI or a test and handed to
`create_app` / `start_server_in_thread`, so two servers can run side by side in one process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgefleet import paths
from edgefleet.mqtt import BrokerUrl
from edgefleet.secret_options import CREDENTIALS_ENV
from edgefleet.trust import is_loopback_host

# EDGEFLEET_STATE_DIR already names the *base* state dir (edgefleet.paths); the server's own dir, a level
# below by default, gets its own variable so the two cannot be confused.
_STATE_DIR_ENV = "EDGEFLEET_SERVER_STATE_DIR"


class ServerSettings(BaseSettings):
    """Everything `edgefleet server run` can be told. Env vars use the prefix `EDGEFLEET_`."""

    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_", extra="forbid")

    state_dir: Path = Field(
        default_factory=lambda: paths.default_state_dir() / "server",
        validation_alias=AliasChoices(_STATE_DIR_ENV),
        description="where the server keeps its database file, fleet CA, broker identity and first admin key",
    )
    db_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///STATE_DIR/fleet.db. PostgreSQL: postgresql+psycopg://user@host/db",
    )
    host: str = Field("127.0.0.1", description="address the HTTP API binds")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port; 0 picks a free one")
    tls: bool | None = Field(
        None, description="serve HTTPS. Default: on when the bind address is not loopback (or a certificate is "
                          "given), off on loopback, where plain HTTP never leaves the machine")
    tls_cert_file: Path | None = Field(None, description="HTTPS certificate chain (PEM); default: one the fleet CA "
                                                         "issues for tls_hosts, the bind address and loopback")
    tls_key_file: Path | None = Field(None, description="private key of tls_cert_file (PEM)")
    tls_hosts: list[str] = Field(
        default_factory=list, description="extra DNS names / IP addresses the fleet-CA-issued HTTPS and broker "
                                          "certificates name (the bind address, public URLs' hosts, 127.0.0.1, "
                                          "localhost and this machine's host name are always in)")
    insecure_http: bool = Field(False, description="allow plain HTTP on a non-loopback bind (development only: "
                                                   "enrollment tokens and API keys would cross the network in clear)")
    broker: str = Field(
        "embedded",
        description="'embedded' starts a private nats-server (MQTT); or an external broker as mqtt://HOST:PORT / mqtts://HOST:PORT",
    )
    embedded_broker_host: str = Field("127.0.0.1", description="address the embedded broker binds")
    embedded_broker_tls: bool | None = Field(
        None, description="TLS on the embedded broker's MQTT listener (certificate from the fleet CA). Default: on "
                          "when it binds a non-loopback address, where it is required")
    insecure_broker: bool = Field(
        False, description="start with an external broker that failed the start-up check (it lets anonymous "
                           "clients in, or a device reach another's topics): development only, warned on every start")
    embedded_broker_port: int = Field(
        18830, ge=0, le=65535, description="embedded broker port (1883 is usually taken by a system Mosquitto); 0 = free"
    )
    public_broker_url: str | None = Field(
        None, description="broker URL handed to devices at enrollment; defaults to the address the broker is bound to"
    )
    public_url: str | None = Field(None, description="URL devices and users reach this server at; defaults to the bound one")
    broker_username: str | None = Field(None, description="username for an external broker (none: anonymous)")
    broker_password: str | None = Field(None, description="password for an external broker")
    shared_telemetry: bool = Field(
        True,
        description="read telemetry through $share/fleet/... so server replicas split it; turn off when unrelated "
                    "servers share the broker (they would take part of this fleet's telemetry). The embedded broker "
                    "has no shared subscriptions and ignores this",
    )
    retained_sweep_s: float = Field(
        300.0, gt=0, description="how often the server has the broker re-offer retained messages, to clear those "
                                 "devices may not keep (a device can publish retained telemetry; only status and "
                                 "twin/reported are kept)")
    broker_crl_file: Path | None = Field(
        None, description="an external Mosquitto's `crlfile` (the crl.pem `server broker-config` wrote): the server "
                          "copies the CRL there at start, at every decommission and daily")
    broker_pid_file: Path | None = Field(
        None, description="an external Mosquitto's `pid_file`: the server sends that process SIGHUP after writing "
                          "broker_crl_file, so a revoked certificate is refused from its next connection")
    token_default_ttl_s: int = Field(3600, gt=0, description="lifetime of an enrollment token when none is given")
    device_cert_days: int = Field(365, gt=0, le=3650, description="validity of device certificates")
    signing_key_file: Path | None = Field(
        None,
        description="the fleet's Ed25519 model-signing key; default edgefleet.paths.signing_key_path(STATE_DIR/..)",
    )
    signing_public_key_file: Path | None = Field(
        None, description="only the public half of the model-signing key (PEM), when packages are signed on "
                          "another machine: the server then never reads or makes a private key. Without it, a "
                          "lone <key>.pub.pem beside the default key path means the same")

    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest request body the HTTP API accepts (bytes); larger ones get 413"
    )
    max_model_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="largest model package POST /api/v1/models accepts (bytes); it is "
                                                "streamed to disk, never held in memory; larger ones get 413"
    )
    enroll_refusal_burst: int = Field(
        20, ge=1, description="refused enrollment attempts one client address (or one token id) may make in a "
                              "burst before it gets 429; successful enrollments do not count"
    )
    enroll_refusals_per_minute: float = Field(
        10.0, gt=0, description="how fast that allowance comes back, in attempts per minute"
    )

    telemetry_raw_retention_s: float = Field(
        86_400.0, gt=0, description="how long raw telemetry snapshots are kept; older ones survive only in the "
                                    "1-minute and 1-hour aggregates")
    telemetry_minute_retention_s: float = Field(7 * 86_400.0, gt=0, description="how long 1-minute aggregates are kept")
    telemetry_hour_retention_s: float = Field(90 * 86_400.0, gt=0, description="how long 1-hour aggregates are kept")
    telemetry_late_s: float = Field(
        60.0, gt=0, description="a snapshot arriving this long after its own ts is counted late (an agent's outbox "
                                "forwarding what it kept offline); it is stored and aggregated all the same")
    telemetry_job_s: float = Field(60.0, gt=0, description="how often telemetry is downsampled and pruned")
    alert_eval_s: float = Field(5.0, gt=0, description="how often the alert rules are evaluated")
    alert_webhook_url: str | None = Field(
        None, pattern=r"^https?://", description="POSTed a JSON body on every alert transition (firing, resolved, "
                                                 "acknowledged); none: no webhook")
    alert_webhook_attempts: int = Field(5, ge=1, le=50, description="tries per webhook delivery before it is dropped")
    alert_webhook_backoff_s: float = Field(1.0, gt=0, description="first delay between webhook tries (doubling)")
    alert_webhook_timeout_s: float = Field(5.0, gt=0, description="timeout of one webhook request")

    def __init__(self, **values: Any) -> None:
        if "state_dir" in values:  # the field's alias is its env var; let callers use the field name
            values[_STATE_DIR_ENV] = values.pop("state_dir")
        credentials = os.environ.get(CREDENTIALS_ENV)
        if credentials and "_secrets_dir" not in values:
            # systemd's LoadCredential=: a setting may come as a credential named like its variable in lower
            # case (edgefleet_db_url), below arguments and environment variables in priority
            values["_secrets_dir"] = credentials
        super().__init__(**values)

    @field_validator("broker")
    @classmethod
    def _broker(cls, v: str) -> str:
        # The port stays required, as it always was here; BrokerUrlError is a ValueError, so pydantic reports it.
        if v != "embedded":
            BrokerUrl.parse(v, require_port=True)
        return v

    @field_validator("public_broker_url")
    @classmethod
    def _public_broker(cls, v: str | None) -> str | None:
        if v is not None:
            BrokerUrl.parse(v, require_port=True)
        return v

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        self.state_dir = Path(self.state_dir).expanduser()
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("give the HTTPS certificate and its key together (tls_cert_file and tls_key_file)")
        if self.tls is False and self.tls_cert_file is not None:
            raise ValueError("a TLS certificate was given with TLS turned off")
        if not self.https and not is_loopback_host(self.host) and not self.insecure_http:
            raise ValueError(f"the HTTP API binds {self.host}, which is not loopback, without TLS: serve HTTPS "
                             "(the default there), or allow plain HTTP explicitly with insecure_http (development)")
        if self.embedded_broker_tls is False and not is_loopback_host(self.embedded_broker_host):
            raise ValueError(f"the embedded broker binds {self.embedded_broker_host}, which is not loopback, "
                             "without TLS: devices' MQTT passwords would cross the network in clear")
        return self

    @property
    def https(self) -> bool:
        """Whether the API serves HTTPS (see the `tls` field for the default)."""
        if self.tls is not None:
            return self.tls
        return self.tls_cert_file is not None or not is_loopback_host(self.host)

    @property
    def embedded_broker_uses_tls(self) -> bool:
        if self.embedded_broker_tls is not None:
            return self.embedded_broker_tls
        return not is_loopback_host(self.embedded_broker_host)

    @property
    def embedded(self) -> bool:
        return self.broker == "embedded"

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.state_dir / 'fleet.db'}"

    def control_key_path(self) -> Path:
        """The server's own Ed25519 key that seals desired twins and commands (edgefleet.protocol.control)."""
        return self.state_dir / "pki" / "control-key.pem"

    def signing_key_path(self) -> Path:
        return self.signing_key_file or paths.signing_key_path(self.state_dir.parent)
