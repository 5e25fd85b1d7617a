"""deploy/compose.yaml holds together: `docker compose config` accepts it where Compose is installed, and either
way its services, health checks, start order, volumes and the paths each side uses for the broker's files
agree with each other, with `server broker-config`'s options and with the Dockerfile."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_server.settings import ServerSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _compose_cli_works() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0


def _option(command: list[str], name: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == name]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """volume or host path -> where the container sees it."""
    return dict(entry.split(":")[:2] for entry in service.get("volumes", []))


def test_docker_compose_accepts_the_file_where_compose_is_installed() -> None:
    if not _compose_cli_works():
        pytest.skip("no `docker compose` here (the other tests in this file check the file itself)")
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_services_start_in_order_and_each_long_running_one_has_a_health_check() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "broker-config", "mosquitto", "server"}
    for name in ("postgres", "mosquitto", "server"):
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
        assert services[name]["restart"] == "unless-stopped", name
    assert services["mosquitto"]["depends_on"] == {"broker-config": {"condition": "service_completed_successfully"}}
    assert services["server"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                                "mosquitto": {"condition": "service_healthy"}}


def test_every_volume_is_declared_and_every_host_path_exists_in_deploy() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for source in _mounts(service):
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is not in deploy/"
            else:
                assert source in declared, f"{name} uses volume {source}, not declared"
    for build in (s["build"] for s in compose["services"].values() if "build" in s):
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for name, secret in compose["secrets"].items():  # made on the host (README), kept out of git
        assert (DEPLOY / secret["file"]).parent.is_dir() and name in (DEPLOY / "README.md").read_text()


def test_the_broker_and_the_server_see_the_files_broker_config_writes_where_it_says() -> None:
    services = _compose()["services"]
    writer, broker, server = services["broker-config"], services["mosquitto"], services["server"]
    command = writer["command"]
    assert command[:2] == ["server", "broker-config"]
    out, mount_path, port = _option(command, "--out")[0], _option(command, "--mount-path")[0], \
        _option(command, "--port")[0]
    shared = {volume for volume, target in _mounts(writer).items() if target == out}
    assert len(shared) == 1 and _mounts(broker)[shared.pop()] == mount_path
    assert "mosquitto" in _option(command, "--host")  # the name the server reaches the broker by
    assert _mounts(broker)["mosquitto-data"] == _option(command, "--data-dir")[0]
    env = server["environment"]
    assert env["EDGEFLEET_BROKER"] == f"mqtts://mosquitto:{port}" and f"{port}:{port}" in broker["ports"]
    server_sees = {target for volume, target in _mounts(server).items() if _mounts(writer).get(volume) == out}
    assert {str(Path(env[k]).parent) for k in ("EDGEFLEET_BROKER_CRL_FILE", "EDGEFLEET_BROKER_PID_FILE")} \
        == server_sees
    assert server["pid"] == "service:mosquitto" and server["user"] == writer["user"] == "1883:1883"
    assert "edgefleet_db_url" in server["secrets"] and env["CREDENTIALS_DIRECTORY"] == "/run/secrets"
    settings = {k.removeprefix("EDGEFLEET_").lower() for k in env if k.startswith("EDGEFLEET_")}
    assert settings <= set(ServerSettings.model_fields), settings - set(ServerSettings.model_fields)


def test_the_dockerfile_copies_what_exists_and_runs_the_server_as_the_brokers_uid() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    root = DEPLOY.parent
    for source in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (root / path).exists(), f"the Dockerfile copies {path}, which is not in the repository"
    assert "--uid 1883" in text and "USER edgefleet" in text and "HEALTHCHECK" in text
