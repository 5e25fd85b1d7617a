"""Staged rollouts: one row per rollout of a registry package and one per device taking part.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("model_size", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("canary_percent", sa.Float(), nullable=False),
        sa.Column("waves", sa.Integer(), nullable=False),
        sa.Column("max_failure_percent", sa.Float(), nullable=False),
        sa.Column("wave_timeout_s", sa.Integer(), nullable=False),
        sa.Column("rollback_on_halt", sa.Boolean(), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("window_start_hour", sa.Integer(), nullable=True),
        sa.Column("window_end_hour", sa.Integer(), nullable=True),
        sa.Column("min_fps", sa.Float(), nullable=True),
        sa.Column("max_p95_ms", sa.Float(), nullable=True),
        sa.Column("max_error_rate", sa.Float(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("current_wave", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rollouts_model_sha256", "rollouts", ["model_sha256"])
    op.create_index("ix_rollouts_state", "rollouts", ["state"])
    op.create_table(
        "rollout_devices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.Integer(), sa.ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("device_id", sa.String(63), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=True),
        sa.Column("previous_model", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rollout_id", "device_id", name="uq_rollout_devices_rollout_device"),
    )
    op.create_index("ix_rollout_devices_rollout_id", "rollout_devices", ["rollout_id"])


def downgrade() -> None:
    op.drop_index("ix_rollout_devices_rollout_id", "rollout_devices")
    op.drop_table("rollout_devices")
    op.drop_index("ix_rollouts_state", "rollouts")
    op.drop_index("ix_rollouts_model_sha256", "rollouts")
    op.drop_table("rollouts")
