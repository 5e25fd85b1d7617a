"""Rollouts may ask for a shadow evaluation: the new model runs beside the current one on live frames for
`shadow_s` seconds before the switch, and a device whose agreement is below `min_agreement` fails.

Revision ID: 0005_rollout_shadow
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_rollout_shadow"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("shadow_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("min_agreement", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("min_agreement")
        batch.drop_column("shadow_s")
