"""Alembic environment. The server passes its open connection in `config.attributes["connection"]`
(see `fleet_server.db.engine.upgrade_database`); the `alembic` command line uses `EDGEFLEET_DB_URL`."""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from fleet_server.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=os.environ.get("EDGEFLEET_DB_URL", "sqlite:///fleet.db"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from fleet_server.db.engine import make_engine

    engine = make_engine(os.environ.get("EDGEFLEET_DB_URL", "sqlite:///fleet.db"))
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
