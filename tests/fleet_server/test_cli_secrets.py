"""Tokens and API keys can reach the CLI through a file or the environment instead of argv (where every user
of the machine can read them in the process list). What is on the command line beats the environment; two
ways at the same level are a usage error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner as EdgefleetRunner
from typer.testing import CliRunner

from fleet_server.cli import devices_app, token_app
from fleet_server.server import ServerHandle
from tests.fleet_server.live_server import CLI_ENV, running_server

runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with running_server(tmp_path_factory.mktemp("cli-secrets") / "server", start_mqtt=False) as handle:
        yield handle


@pytest.fixture(scope="module")
def viewer_key(server: ServerHandle) -> str:
    import httpx

    r = httpx.post(f"{server.url}/api/v1/apikeys", json={"role": "viewer", "name": "files"},
                   headers={"Authorization": f"Bearer {server.admin_key}"})
    return r.json()["key"]


def _secret_file(tmp_path: Path, secret: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(secret + "\n")  # an editor's trailing newline is not part of the secret
    path.chmod(0o600)
    return path


def _token_create(server: ServerHandle, *args: str, env: dict[str, str | None] | None = None):  # noqa: ANN202
    return runner.invoke(token_app, ["create", "--server", server.url, *args], env={**CLI_ENV, **(env or {})})


def test_the_api_key_can_come_from_a_file(server: ServerHandle, viewer_key: str, tmp_path: Path) -> None:
    admin = _token_create(server, "--api-key-file", str(_secret_file(tmp_path, server.admin_key)))
    assert admin.exit_code == 0, admin.output
    viewer = _token_create(server, "--api-key-file", str(_secret_file(tmp_path, viewer_key, "v")))
    assert viewer.exit_code == 1 and "403" in viewer.output  # the file's key is the one used


def test_the_api_key_file_can_come_from_the_environment(server: ServerHandle, tmp_path: Path) -> None:
    path = _secret_file(tmp_path, server.admin_key)
    result = runner.invoke(devices_app, ["ls", "--json", "--server", server.url],
                           env={**CLI_ENV, "EDGEFLEET_API_KEY_FILE": str(path)})
    assert result.exit_code == 0, result.output


def test_the_command_line_beats_the_environment_either_way(server: ServerHandle, viewer_key: str,
                                                           tmp_path: Path) -> None:
    viewer_file = _secret_file(tmp_path, viewer_key)
    by_key = _token_create(server, "--api-key", server.admin_key, env={"EDGEFLEET_API_KEY_FILE": str(viewer_file)})
    assert by_key.exit_code == 0, by_key.output
    by_file = _token_create(server, "--api-key-file", str(viewer_file), env={"EDGEFLEET_API_KEY": server.admin_key})
    assert by_file.exit_code == 1 and "403" in by_file.output


def test_two_ways_at_once_or_an_empty_file_are_usage_errors(server: ServerHandle, tmp_path: Path) -> None:
    path = _secret_file(tmp_path, server.admin_key)
    both = _token_create(server, "--api-key", server.admin_key, "--api-key-file", str(path))
    assert both.exit_code == 2 and "one way" in both.output
    both_env = _token_create(server, env={"EDGEFLEET_API_KEY": server.admin_key, "EDGEFLEET_API_KEY_FILE": str(path)})
    assert both_env.exit_code == 2
    empty = _token_create(server, "--api-key-file", str(_secret_file(tmp_path, "", "empty")))
    assert empty.exit_code == 2 and "empty" in empty.output
    missing = _token_create(server, "--api-key-file", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_the_help_names_the_file_options_and_variables() -> None:
    from edgefleet.cli import cli

    key_help = runner.invoke(token_app, ["create", "--help"], env={"COLUMNS": "200"}).output
    assert "--api-key-file" in key_help and "EDGEFLEET_API_KEY_FILE" in key_help
    enroll_help = EdgefleetRunner().invoke(cli, ["agent", "enroll", "--help"], env={"COLUMNS": "200"}).output
    assert "--token-file" in enroll_help and "EDGEFLEET_ENROLL_TOKEN" in enroll_help


# ------------------------------------------------------------------------------------ agent enroll


def _new_token(server: ServerHandle) -> str:
    import httpx

    r = httpx.post(f"{server.url}/api/v1/tokens", json={}, headers={"Authorization": f"Bearer {server.admin_key}"})
    return r.json()["token"]


def _agent_enroll(server: ServerHandle, state: Path, *args: str,
                  env: dict[str, str | None] | None = None):  # noqa: ANN202 - click's Result
    from edgefleet.cli import cli

    return EdgefleetRunner().invoke(cli, ["agent", "enroll", "--server", server.url, "--state-dir", str(state), *args],
                         env={**CLI_ENV, **(env or {})})


def test_agent_enroll_reads_the_token_from_a_file(server: ServerHandle, tmp_path: Path) -> None:
    result = _agent_enroll(server, tmp_path / "a", "--token-file", str(_secret_file(tmp_path, _new_token(server))))
    assert result.exit_code == 0 and "enrolled as" in result.output, result.output


def test_agent_enroll_reads_the_token_from_the_environment(server: ServerHandle, tmp_path: Path) -> None:
    result = _agent_enroll(server, tmp_path / "a", env={"EDGEFLEET_ENROLL_TOKEN": _new_token(server)})
    assert result.exit_code == 0 and "enrolled as" in result.output, result.output


def test_agent_enroll_needs_exactly_one_token(server: ServerHandle, tmp_path: Path) -> None:
    none = _agent_enroll(server, tmp_path / "a")
    assert none.exit_code == 2 and "token" in none.output
    token = _new_token(server)
    both = _agent_enroll(server, tmp_path / "b", "--token", token, "--token-file", str(_secret_file(tmp_path, token)))
    assert both.exit_code == 2 and "one way" in both.output
    by_cli = _agent_enroll(server, tmp_path / "c", "--token", token,
                           env={"EDGEFLEET_ENROLL_TOKEN_FILE": "/nonexistent"})
    assert by_cli.exit_code == 0, by_cli.output  # the command line beats the environment
