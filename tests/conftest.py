"""Session-wide real services. Package-level conftests build on these.

Every test that needs PostgreSQL or Mosquitto (the machine's broker or a private one) carries the `postgres` or
`mosquitto` marker, so `-m "not postgres and not mosquitto"` runs the rest on a machine without them. Requesting
one of the fixtures below marks a test by itself; a fixture that asks for a service only for some of its params
marks those params (`pytest.param(..., marks=pytest.mark.mosquitto)`), and the function-scoped fixtures refuse
a test that reached them unmarked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import services
from tests.mqtt_client import sweep_retained

# fixture -> the marker every test using it carries
SERVICE_MARKERS = {"mosquitto_port": "mosquitto", "private_mosquitto": "mosquitto", "postgres_url": "postgres"}
# what the session sweep cleared from the shared broker: a test that forgets to clean up shows in the summary
_CLEARED: list[str] = []


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in SERVICE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _CLEARED:
        terminalreporter.write_line(f"shared Mosquitto: cleared {len(_CLEARED)} retained topics of this run's test "
                                    f"devices at the end, e.g. {_CLEARED[:3]}")


def _require_marker(request: pytest.FixtureRequest, marker: str) -> None:
    if request.node.get_closest_marker(marker) is None:
        pytest.fail(f"{request.node.nodeid} uses {marker} but is not marked `{marker}`, so `-m 'not {marker}'` "
                    f"would not deselect it: mark the test or the fixture param that needs it", pytrace=False)


@pytest.fixture(scope="session")
def shared_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The machine's Mosquitto on 1883 when it runs, else a private one on a free port. At the end, the retained
    messages this run's devices left on it are cleared, and the run fails if any stay."""
    forced = os.environ.get("EDGEFLEET_TEST_MOSQUITTO_PORT")
    broker = None
    if forced:
        port = int(forced)
        if not services.port_open(port):
            services.service_missing(f"EDGEFLEET_TEST_MOSQUITTO_PORT={forced}, but nothing listens there")
    elif services.port_open(1883):
        port = 1883
    else:
        if services.mosquitto_binary() is None:
            services.service_missing("no Mosquitto running on 1883 and none installed")
        try:
            broker = services.Mosquitto(services.plain_mosquitto_config(), tmp_path_factory.mktemp("mosquitto")).start()
        except Exception as exc:  # noqa: BLE001 - reported as the skip (or CI failure) reason
            services.service_missing(f"no Mosquitto on 1883 and could not start one: {exc}")
        port = broker.port
    yield port
    try:
        _CLEARED.extend(sweep_retained(port))
    finally:
        if broker is not None:
            broker.stop()


@pytest.fixture()
def mosquitto_port(request: pytest.FixtureRequest, shared_mosquitto: int) -> int:
    """The shared broker's port. Shared with other test runs too: use ids from tests.mqtt_client.unique_id."""
    _require_marker(request, "mosquitto")
    return shared_mosquitto


@pytest.fixture()
def private_mosquitto(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., services.Mosquitto]]:
    """Starts Mosquitto processes of the test's own (one it may stop, or with TLS and ACLs); all stop after it."""
    _require_marker(request, "mosquitto")
    if services.mosquitto_binary() is None:
        services.service_missing("mosquitto is not installed (apt-get install mosquitto)")
    started: list[services.Mosquitto] = []

    def start(config_lines: list[str] | None = None, workdir: Path | None = None) -> services.Mosquitto:
        workdir = workdir or tmp_path / f"mosquitto-{len(started)}"
        workdir.mkdir(parents=True, exist_ok=True)
        broker = services.Mosquitto(config_lines or services.plain_mosquitto_config(), workdir)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
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
    except Exception as exc:  # noqa: BLE001 - reported as the skip (or CI failure) reason
        services.service_missing(f"no PostgreSQL on 5432 and could not start one: {exc}")
    yield pg.url
    pg.stop()


@pytest.fixture(scope="session")
def scratch_database(postgres_admin_url: str) -> Iterator[str]:
    """A scratch database of its own for this test session, dropped at its end."""
    try:
        url, drop = services.create_scratch_database(postgres_admin_url)
    except Exception as exc:  # noqa: BLE001 - a forced URL that does not answer, a refused login
        services.service_missing(f"cannot create a scratch database on {postgres_admin_url}: {exc}")
    yield url
    drop()


@pytest.fixture()
def postgres_url(request: pytest.FixtureRequest, scratch_database: str) -> str:
    _require_marker(request, "postgres")
    return scratch_database


@pytest.fixture()
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d
