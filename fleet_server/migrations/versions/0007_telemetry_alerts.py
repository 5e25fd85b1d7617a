"""Monitoring: telemetry aggregates (1 minute, 1 hour), the newest snapshot on each device row, alerts and
their per-tag rule settings.

Raw rows get `aggregated` (false for those already stored: the first downsampling pass folds them in).

Revision ID: 0007_telemetry_alerts
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_telemetry_alerts"
down_revision: str | None = "0006_commands"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("last_telemetry", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("last_telemetry_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("telemetry") as batch:
        batch.add_column(sa.Column("aggregated", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_telemetry_aggregated", "telemetry", ["aggregated"])
    op.create_table(
        "telemetry_aggregates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(63), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.String(4), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "step", "bucket_start", name="uq_telemetry_aggregates_bucket"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(80), nullable=False),
        sa.Column("device_id", sa.String(63), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.String(1000), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alerts_subject_rule_state", "alerts", ["subject", "rule", "state"])
    op.create_index("ix_alerts_state", "alerts", ["state"])
    op.create_table(
        "alert_rule_overrides",
        sa.Column("tag", sa.String(300), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tag"),
    )


def downgrade() -> None:
    op.drop_table("alert_rule_overrides")
    op.drop_index("ix_alerts_state", "alerts")
    op.drop_index("ix_alerts_subject_rule_state", "alerts")
    op.drop_table("alerts")
    op.drop_table("telemetry_aggregates")
    op.drop_index("ix_telemetry_aggregated", "telemetry")
    with op.batch_alter_table("telemetry") as batch:
        batch.drop_column("aggregated")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("last_telemetry_at")
        batch.drop_column("last_telemetry")
