"""Tables of the fleet server. Migrations in `fleet_server/migrations/versions/` must match these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fleet_server.db.types import UTCDateTime

JsonDict = dict[str, Any]


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), JsonDict: sa.JSON()}


class Device(Base):
    """A device enrolled once; kept (decommissioned) after removal so its history and audit stay readable."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(sa.String(63), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(128))
    tags: Mapped[JsonDict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="offline")
    agent_version: Mapped[str | None] = mapped_column(sa.String(64))
    last_seen: Mapped[datetime | None]
    desired: Mapped[JsonDict | None]
    desired_revision: Mapped[int] = mapped_column(default=0)
    reported: Mapped[JsonDict | None]
    reported_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime]
    enrolled_with: Mapped[str | None] = mapped_column(sa.String(32), doc="id of the enrollment token used")
    decommissioned_at: Mapped[datetime | None]
    mqtt_password_hash: Mapped[str | None] = mapped_column(sa.String(128))
    mqtt_password_bcrypt: Mapped[str | None] = mapped_column(sa.String(80), doc="what the embedded broker checks")
    cert_serial: Mapped[str | None] = mapped_column(sa.String(64), doc="hex serial of the device certificate")
    hardware: Mapped[JsonDict] = mapped_column(default=dict)
    last_telemetry: Mapped[JsonDict | None] = mapped_column(doc="the newest telemetry snapshot (by its ts)")
    last_telemetry_at: Mapped[datetime | None] = mapped_column(doc="that snapshot's ts")

    @property
    def active(self) -> bool:
        return self.decommissioned_at is None


class EnrollmentToken(Base):
    __tablename__ = "enrollment_tokens"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, doc="public part of the token")
    hash: Mapped[str] = mapped_column(sa.String(128))
    uses_left: Mapped[int]
    uses_total: Mapped[int]
    expires_at: Mapped[datetime]
    tags: Mapped[JsonDict] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    prefix: Mapped[str] = mapped_column(sa.String(32), unique=True, doc="public part of the key, shown in listings")
    hash: Mapped[str] = mapped_column(sa.String(128))
    role: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(sa.String(128))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target: Mapped[str | None] = mapped_column(sa.String(128))
    details: Mapped[JsonDict] = mapped_column(default=dict)


class TelemetryRow(Base):
    """Raw telemetry snapshots, kept `telemetry_raw_retention_s` and folded into `TelemetryAggregate` buckets
    (services.telemetry_rollup) before they go; `aggregated` marks the ones already folded."""

    __tablename__ = "telemetry"
    __table_args__ = (sa.Index("ix_telemetry_device_ts", "device_id", "ts"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(sa.String(63), sa.ForeignKey("devices.id", ondelete="CASCADE"))
    ts: Mapped[datetime]
    payload: Mapped[JsonDict]
    aggregated: Mapped[bool] = mapped_column(default=False, server_default=sa.false(), index=True)


class TelemetryAggregate(Base):
    """One device's telemetry over one minute or one hour. `stats` holds, per numeric field, mergeable
    parts {n, sum, min, max, last}, so a snapshot arriving late (from an agent's outbox) is folded in later."""

    __tablename__ = "telemetry_aggregates"
    __table_args__ = (sa.UniqueConstraint("device_id", "step", "bucket_start", name="uq_telemetry_aggregates_bucket"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(sa.String(63), sa.ForeignKey("devices.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(sa.String(4), doc="1m | 1h")
    bucket_start: Mapped[datetime]
    samples: Mapped[int]
    last_ts: Mapped[datetime] = mapped_column(doc="ts of the newest snapshot folded in (whose values are `last`)")
    stats: Mapped[JsonDict]


class Alert(Base):
    """One firing of one rule for one subject (a device, or `rollout:ID`): `firing`, then `resolved` when the
    condition clears; an operator's acknowledgement is kept beside the state and does not end it."""

    __tablename__ = "alerts"
    __table_args__ = (sa.Index("ix_alerts_subject_rule_state", "subject", "rule", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(sa.String(32))
    subject: Mapped[str] = mapped_column(sa.String(80), doc="a device id, or rollout:ID")
    device_id: Mapped[str | None] = mapped_column(sa.String(63))
    state: Mapped[str] = mapped_column(sa.String(16), index=True, doc="firing | resolved")
    message: Mapped[str] = mapped_column(sa.String(1000))
    value: Mapped[float | None] = mapped_column(sa.Float())
    details: Mapped[JsonDict] = mapped_column(default=dict)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(sa.String(128))


class AlertRuleOverride(Base):
    """Rule settings over the built-in defaults: tag '' is the fleet-wide layer, 'k=v' applies to devices
    carrying that tag. `rules` maps a rule name to the fields it overrides."""

    __tablename__ = "alert_rule_overrides"

    tag: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    rules: Mapped[JsonDict]
    updated_by: Mapped[str] = mapped_column(sa.String(128))
    updated_at: Mapped[datetime]


class RevokedCert(Base):
    """Certificates on the fleet CA's revocation list (Mosquitto reads the CRL file written from this)."""

    __tablename__ = "revoked_certs"

    serial: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.String(63))
    revoked_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(sa.String(64), default="cessationOfOperation")


class ModelPackage(Base):
    """A signed model package in the server's registry; its bytes are `ModelStore.path(sha256)`. The columns
    are copied from the verified manifest so listings need not read it; `manifest` keeps the whole of it."""

    __tablename__ = "model_packages"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_model_packages_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    version: Mapped[str] = mapped_column(sa.String(64))
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    size: Mapped[int] = mapped_column(sa.BigInteger())
    precision: Mapped[str] = mapped_column(sa.String(8))
    task: Mapped[str] = mapped_column(sa.String(32))
    deployable: Mapped[bool]
    manifest: Mapped[JsonDict]
    uploaded_by: Mapped[str] = mapped_column(sa.String(128))
    uploaded_at: Mapped[datetime]


class Rollout(Base):
    """A staged rollout of one registry package: a canary wave, then `waves` equal waves. Every decision the
    scheduler takes is stored here and in `rollout_devices`, so a restarted server continues where it was."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model_sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    model_name: Mapped[str] = mapped_column(sa.String(128))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    model_size: Mapped[int] = mapped_column(sa.BigInteger())
    target: Mapped[str] = mapped_column(sa.String(300), doc="all | tag=K=V | device=ID")
    canary_percent: Mapped[float] = mapped_column(sa.Float())
    waves: Mapped[int]
    max_failure_percent: Mapped[float] = mapped_column(sa.Float())
    wave_timeout_s: Mapped[int]
    rollback_on_halt: Mapped[bool]
    forced: Mapped[bool] = mapped_column(doc="an admin rolled out a package marked not deployable")
    window_start_hour: Mapped[int | None] = mapped_column(doc="device-local hour a switch may start (inclusive)")
    window_end_hour: Mapped[int | None] = mapped_column(doc="device-local hour switches stop (exclusive)")
    min_fps: Mapped[float | None] = mapped_column(sa.Float())
    max_p95_ms: Mapped[float | None] = mapped_column(sa.Float())
    max_error_rate: Mapped[float | None] = mapped_column(sa.Float())
    shadow_s: Mapped[float | None] = mapped_column(sa.Float(), doc="shadow evaluation window before the switch")
    min_agreement: Mapped[float | None] = mapped_column(sa.Float(), doc="a device's shadow agreement below it fails")
    state: Mapped[str] = mapped_column(sa.String(16), index=True, doc="running|paused|halted|aborted|succeeded")
    current_wave: Mapped[int] = mapped_column(default=0, doc="0 is the canary")
    reason: Mapped[str | None] = mapped_column(sa.String(1000))
    created_by: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class RolloutDevice(Base):
    """One device's part in a rollout: its wave, where its update stands, and the model to go back to."""

    __tablename__ = "rollout_devices"
    __table_args__ = (sa.UniqueConstraint("rollout_id", "device_id", name="uq_rollout_devices_rollout_device"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(sa.ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(sa.String(63), sa.ForeignKey("devices.id", ondelete="CASCADE"))
    wave: Mapped[int]
    state: Mapped[str] = mapped_column(sa.String(16),
                                       doc="pending|updating|succeeded|failed|rolled_back|timed_out")
    reason: Mapped[str | None] = mapped_column(sa.String(1000))
    previous_model: Mapped[JsonDict | None] = mapped_column(doc="the desired ModelRef before the switch")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CommandRow(Base):
    """A remote command to one device and what became of it (DESIGN.md 7): `queued` (waiting for the device to come
    online, until `expires_at`), `sent` (published with `deadline`), then `succeeded` / `failed` (the device's
    reply), `timed_out` (no reply in time; a late reply is still kept in `reply`) or `expired` (never sent)."""

    __tablename__ = "commands"
    __table_args__ = (sa.Index("ix_commands_device_created", "device_id", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, doc="the request id, also in the MQTT topic")
    device_id: Mapped[str] = mapped_column(sa.String(63), sa.ForeignKey("devices.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(64))
    args: Mapped[JsonDict] = mapped_column(default=dict)
    caller: Mapped[str] = mapped_column(sa.String(128))
    state: Mapped[str] = mapped_column(sa.String(16), index=True,
                                       doc="queued|sent|succeeded|failed|expired|timed_out")
    timeout_s: Mapped[float] = mapped_column(sa.Float())
    expires_at: Mapped[datetime | None] = mapped_column(doc="a queued command not sent by then expires")
    deadline: Mapped[datetime | None] = mapped_column(doc="the device must not start it after this")
    reply: Mapped[JsonDict | None] = mapped_column(doc="the device's CommandReply: ok, result, error")
    error: Mapped[str | None] = mapped_column(sa.String(1000), doc="why it failed, expired or timed out")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
