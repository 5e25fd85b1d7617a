"""A whole fleet server for end-to-end tests: API, database, embedded broker (unless told otherwise) and bridge,
on free ports, returned once the bridge is connected (a device enrolled at once can be reached). ``CLI_ENV``
keeps the caller's own environment out of CLI tests that talk to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleet_server.server import ServerHandle, start_server_in_thread
from fleet_server.settings import ServerSettings


CLI_ENV = {"EDGEFLEET_API_KEY": None, "EDGEFLEET_API_KEY_FILE": None, "EDGEFLEET_SERVER": None,
           "EDGEFLEET_ENROLL_TOKEN": None, "EDGEFLEET_ENROLL_TOKEN_FILE": None, "COLUMNS": "200"}


@contextmanager
def running_server(state_dir: Path, start_mqtt: bool = True, **settings: Any) -> Iterator[ServerHandle]:
    """``start_mqtt=False``: the HTTP API alone (no broker, no bridge), for tests of the API and the CLI."""
    values: dict[str, Any] = {"port": 0, "embedded_broker_port": 0, **settings}
    with start_server_in_thread(ServerSettings(state_dir=state_dir, **values), start_mqtt=start_mqtt) as handle:
        if start_mqtt:
            assert handle.fleet.bridge.wait_connected(30), "the server's bridge did not connect"
        yield handle
