"""A whole fleet server for end-to-end tests: API, database, embedded broker (unless told otherwise) and bridge,
on free ports, returned once the bridge is connected (a device enrolled at once can be reached)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleet_server.server import ServerHandle, start_server_in_thread
from fleet_server.settings import ServerSettings


@contextmanager
def running_server(state_dir: Path, **settings: Any) -> Iterator[ServerHandle]:
    values: dict[str, Any] = {"port": 0, "embedded_broker_port": 0, **settings}
    with start_server_in_thread(ServerSettings(state_dir=state_dir, **values)) as handle:
        assert handle.fleet.bridge.wait_connected(30), "the server's bridge did not connect"
        yield handle
