from pathlib import Path

import pytest
from pydantic import ValidationError

from edgefleet.mqtt import BrokerUrl
from fleet_server.settings import ServerSettings


def test_defaults_use_the_embedded_broker_off_1883_and_sqlite_in_the_state_dir(tmp_path: Path) -> None:
    s = ServerSettings(state_dir=tmp_path)
    assert s.embedded and s.embedded_broker_port == 18830
    assert s.host == "127.0.0.1" and s.embedded_broker_host == "127.0.0.1"
    assert s.database_url() == f"sqlite:///{tmp_path / 'fleet.db'}"


def test_environment_variables_with_the_edgefleet_prefix_are_read(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEFLEET_PORT", "9999")
    monkeypatch.setenv("EDGEFLEET_BROKER", "mqtt://127.0.0.1:1883")
    s = ServerSettings(state_dir=tmp_path)
    assert s.port == 9999 and not s.embedded


def test_state_dir_defaults_under_the_edgefleet_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEFLEET_STATE_DIR", str(tmp_path))
    assert ServerSettings().state_dir == tmp_path / "server"


def test_unknown_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        ServerSettings(state_dir=tmp_path, brokr="embedded")


@pytest.mark.parametrize("url", ["tcp://host:1883", "mqtt://host", "mqtt://host:99999", "embedded2"])
def test_bad_broker_urls_are_refused_with_the_expected_form(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="mqtt://HOST:PORT|out of range"):
        ServerSettings(state_dir=tmp_path, broker=url)


def test_broker_urls_parse_into_scheme_host_port() -> None:
    url = BrokerUrl.parse("mqtts://broker.local:8883")
    assert (url.scheme, url.host, url.port) == ("mqtts", "broker.local", 8883)


def test_every_setting_has_a_description() -> None:
    assert all(f.description for f in ServerSettings.model_fields.values())


def test_server_state_dir_has_its_own_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEFLEET_SERVER_STATE_DIR", str(tmp_path / "srv"))
    assert ServerSettings().state_dir == tmp_path / "srv"
