"""The whole server started in-process: ports, first admin key, restart, start-up failures."""

from pathlib import Path

import httpx
import pytest

from fleet_server.server import ServerStartError, start_server_in_thread
from fleet_server.settings import ServerSettings


def test_first_start_makes_an_admin_key_and_a_restart_reuses_everything(tmp_path: Path) -> None:
    settings = ServerSettings(state_dir=tmp_path / "s", port=0, embedded_broker_port=0)
    with start_server_in_thread(settings, start_mqtt=False) as first:
        assert first.admin_key_created and first.admin_key.startswith("efk_")
        assert first.url.startswith("http://127.0.0.1:")
        r = httpx.get(f"{first.url}/api/v1/devices", headers={"Authorization": f"Bearer {first.admin_key}"})
        assert r.status_code == 200
        key, ca = first.admin_key, first.fleet.ca.cert_pem
    with start_server_in_thread(settings, start_mqtt=False) as second:
        assert not second.admin_key_created and second.admin_key == key
        assert second.fleet.ca.cert_pem == ca
        r = httpx.get(f"{second.url}/api/v1/devices", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
    assert not second.running


def test_a_taken_port_is_a_clear_start_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        settings = ServerSettings(state_dir=tmp_path / "s", port=port)
        with pytest.raises(ServerStartError, match=f"127.0.0.1:{port}"):
            start_server_in_thread(settings, start_mqtt=False)


def test_an_unreachable_database_is_a_clear_start_error(tmp_path: Path) -> None:
    settings = ServerSettings(state_dir=tmp_path / "s", port=0,
                              db_url="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    with pytest.raises(ServerStartError, match="did not start"):
        start_server_in_thread(settings, start_mqtt=False)
