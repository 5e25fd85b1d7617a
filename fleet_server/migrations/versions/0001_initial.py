"""Initial schema: devices, enrollment tokens, API keys, audit log, telemetry, revoked certificates.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _ts("ts"),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("agent_version", sa.String(64), nullable=True),
        _ts("last_seen", nullable=True),
        sa.Column("desired", sa.JSON(), nullable=True),
        sa.Column("desired_revision", sa.Integer(), nullable=False),
        sa.Column("reported", sa.JSON(), nullable=True),
        _ts("reported_at", nullable=True),
        _ts("enrolled_at"),
        sa.Column("enrolled_with", sa.String(32), nullable=True),
        _ts("decommissioned_at", nullable=True),
        sa.Column("mqtt_password_hash", sa.String(128), nullable=True),
        sa.Column("cert_serial", sa.String(64), nullable=True),
        sa.Column("hardware", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("uses_left", sa.Integer(), nullable=False),
        sa.Column("uses_total", sa.Integer(), nullable=False),
        _ts("expires_at"),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "revoked_certs",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(63), nullable=False),
        _ts("revoked_at"),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_table(
        "telemetry",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(63), nullable=False),
        _ts("ts"),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_telemetry_device_ts", "telemetry", ["device_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_telemetry_device_ts", table_name="telemetry")
    op.drop_table("telemetry")
    op.drop_table("revoked_certs")
    op.drop_table("enrollment_tokens")
    op.drop_table("devices")
    op.drop_index("ix_audit_log_ts", table_name="audit_log")
    op.drop_index("ix_audit_log_action", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
