import sqlalchemy as sa
from alembic.script import ScriptDirectory

from fleet_server.db import Base, upgrade_database
from fleet_server.db.engine import alembic_config, make_engine

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()  # raises if the chain has two heads
TABLES = {"devices", "enrollment_tokens", "api_keys", "audit_log", "telemetry", "revoked_certs", "model_packages",
          "rollouts", "rollout_devices", "commands", "telemetry_aggregates", "alerts", "alert_rule_overrides"}


def test_upgrade_creates_every_table_and_is_idempotent(db_url: str) -> None:
    upgrade_database(db_url)
    upgrade_database(db_url)  # every start runs it: must be a no-op the second time
    engine = make_engine(db_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert TABLES <= names
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    finally:
        engine.dispose()


def test_migrations_match_the_models(db_url: str) -> None:
    """A model change without a migration fails here (Alembic autogenerate finds a difference)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade_database(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_the_tables(db_url: str) -> None:
    from alembic import command

    upgrade_database(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert not TABLES & set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
