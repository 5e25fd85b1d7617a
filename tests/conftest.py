"""Session-wide real services. Package-level conftests build on these."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services


@pytest.fixture(scope="session")
def mosquitto_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The machine's Mosquitto on 1883 when it runs, else a private one on a free port."""
    forced = os.environ.get("EDGEFLEET_TEST_MOSQUITTO_PORT")
    if forced:
        yield int(forced)
        return
    if services.port_open(1883):
        yield 1883
        return
    if services.mosquitto_binary() is None:
        pytest.skip("no Mosquitto running on 1883 and none installed")
    broker = services.Mosquitto(services.plain_mosquitto_config(), tmp_path_factory.mktemp("mosquitto")).start()
    yield broker.port
    broker.stop()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL superuser URL: the machine's on 5432 when it runs, else a private cluster."""
    forced = os.environ.get("EDGEFLEET_TEST_POSTGRES_URL")
    if forced:
        yield forced
        return
    if services.port_open(5432):
        yield "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        return
    try:
        pg = services.PrivatePostgres().start()
    except Exception as exc:  # noqa: BLE001 - reported as a skip reason
        pytest.skip(f"no PostgreSQL on 5432 and could not start one: {exc}")
    yield pg.url
    pg.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A scratch database of its own for this test session."""
    url, drop = services.create_scratch_database(postgres_admin_url)
    yield url
    drop()


@pytest.fixture()
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d
