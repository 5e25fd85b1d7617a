"""Devices get a bcrypt hash of their MQTT password for the embedded NATS broker's users file.

The sha256 hash stays for the server's own checks; the broker (nats-server) verifies bcrypt hashes itself, and
a 256-bit random secret needs no slow KDF, so the cost is the lowest that keeps logins and reloads fast
(bench/results/nats_users.md). Devices enrolled before this revision have no bcrypt hash and must enroll again
to use the embedded broker.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("mqtt_password_bcrypt", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("mqtt_password_bcrypt")
