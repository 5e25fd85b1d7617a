"""`edgefleet model publish` and `edgefleet model ls [--server]` as a user runs them, through the `edgefleet`
command, against a whole server running in-process (uvicorn on a free port)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgefleet.cli import cli
from fleet_server.model_store import ModelStore
from fleet_server.server import ServerHandle
from models.package import file_sha256
from tests.fleet_server.live_server import CLI_ENV, running_server
from tests.fleet_server.model_packages import Packer, flipped_byte, garbage

runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with running_server(tmp_path_factory.mktemp("registry-cli") / "server", start_mqtt=False) as handle:
        yield handle


@pytest.fixture()
def packer(server: ServerHandle, tmp_path: Path) -> Packer:
    return Packer.for_server(server.settings.signing_key_path(), tmp_path / "work")


def model(server: ServerHandle, *args: str, key: str | None = None):  # noqa: ANN201 - click Result
    return runner.invoke(cli, ["model", *args, "--server", server.url, "--api-key", key or server.admin_key],
                         env=CLI_ENV)


def test_publish_then_again_then_ls_from_the_server(server: ServerHandle, packer: Packer) -> None:
    package = packer.make("1.0.0", name="cli-first")
    first = model(server, "publish", str(package), "--json")
    assert first.exit_code == 0, first.output
    view = json.loads(first.stdout)
    assert view["created"] is True and view["sha256"] == file_sha256(package) and view["version"] == "1.0.0"
    again = model(server, "publish", str(package))
    assert again.exit_code == 0 and "already published" in again.stdout

    listed = model(server, "ls", "--name", "cli-first", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(m["name"], m["sha256"]) for m in json.loads(listed.stdout)] == [("cli-first", view["sha256"])]
    table = runner.invoke(cli, ["model", "ls", "--server", server.url, "--api-key", server.admin_key],
                          env=CLI_ENV)
    assert table.exit_code == 0 and "cli-first" in table.stdout and view["sha256"][:12] in table.stdout


def test_refused_packages_and_bad_input_exit_2(server: ServerHandle, packer: Packer, tmp_path: Path) -> None:
    tampered = model(server, "publish", str(flipped_byte(packer.make(name="cli-bad"), tmp_path / "t.efpkg")))
    assert tampered.exit_code == 2 and "422" in tampered.stderr and "corrupt or altered" in tampered.stderr
    foreign = model(server, "publish", str(Packer.stranger(tmp_path / "s").make(name="cli-bad")))
    assert foreign.exit_code == 2 and "not by the trusted key" in foreign.stderr
    assert model(server, "publish", str(garbage(tmp_path / "g.efpkg"))).exit_code == 2
    missing = model(server, "publish", str(tmp_path / "nothing.efpkg"))
    assert missing.exit_code == 2 and "no package file" in missing.stderr
    assert json.loads(model(server, "ls", "--name", "cli-bad", "--json").stdout) == []


def test_a_clash_or_a_key_too_weak_exits_1_and_an_unreachable_server_3(server: ServerHandle, packer: Packer,
                                                                        tmp_path: Path) -> None:
    assert model(server, "publish", str(packer.make(name="cli-clash"))).exit_code == 0
    clash = model(server, "publish", str(packer.make(name="cli-clash", extra=b"other")))
    assert clash.exit_code == 1 and "409" in clash.stderr and "new version" in clash.stderr
    viewer = runner.invoke(cli, ["apikey", "create", "--role", "viewer", "--json", "--server", server.url,
                                 "--api-key", server.admin_key], env=CLI_ENV)
    key = json.loads(viewer.stdout)["key"]
    weak = model(server, "publish", str(packer.make("2", name="cli-clash")), key=key)
    assert weak.exit_code == 1 and "403" in weak.stderr
    gone = runner.invoke(cli, ["model", "publish", str(packer.make(name="cli-clash")), "--server",
                               "http://127.0.0.1:9", "--api-key", "x"], env=CLI_ENV)
    assert gone.exit_code == 3 and "cannot reach" in gone.stderr


def test_publish_takes_the_key_from_a_file(server: ServerHandle, packer: Packer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(server.admin_key + "\n")
    result = runner.invoke(cli, ["model", "publish", str(packer.make(name="cli-file")), "--server", server.url,
                                 "--api-key-file", str(key_file)], env=CLI_ENV)
    assert result.exit_code == 0, result.output


def test_ls_without_server_is_the_local_registry(packer: Packer, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    added = runner.invoke(cli, ["model", "add", str(packer.make(name="local-only")), "--registry", str(registry),
                                "--no-verify"], env=CLI_ENV)
    assert added.exit_code == 0, added.output
    ls = runner.invoke(cli, ["model", "ls", "--registry", str(registry), "--json"], env=CLI_ENV)
    listing = runner.invoke(cli, ["model", "list", "--registry", str(registry), "--json"], env=CLI_ENV)
    assert ls.exit_code == 0 and ls.stdout == listing.stdout
    assert [e["name"] for e in json.loads(ls.stdout)] == ["local-only"]
    both = runner.invoke(cli, ["model", "ls", "--server", "http://127.0.0.1:9", "--registry", str(registry)],
                         env=CLI_ENV)
    assert both.exit_code == 2


def test_an_upload_reaches_the_store_in_pieces_not_whole(server: ServerHandle, packer: Packer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a real HTTP server the body is handed on as it arrives: a package of several MB comes in many
    chunks, none near its size (the store only counts them; it still writes and verifies every byte)."""
    seen: list[int] = []
    add = ModelStore.add_from_stream

    def counting(self: ModelStore, chunks, public_key):  # noqa: ANN001, ANN202
        def counted() -> Iterator[bytes]:
            for chunk in chunks:
                seen.append(len(chunk))
                yield chunk
        return add(self, counted(), public_key)

    monkeypatch.setattr(ModelStore, "add_from_stream", counting)
    package = packer.make(name="cli-big", extra=bytes(range(256)) * 16_000)  # ~4 MB
    assert model(server, "publish", str(package)).exit_code == 0
    assert sum(seen) == package.stat().st_size and len(seen) > 4 and max(seen) < package.stat().st_size // 4


SERVER_ONLY = ("sqlalchemy", "fastapi", "starlette", "alembic", "uvicorn", "psycopg", "bcrypt", "prometheus_client")


def test_publish_needs_no_server_packages(tmp_path: Path) -> None:
    """A build machine with the agent extra only (no FastAPI, no SQLAlchemy) can publish: the command and its
    client import, and finding no local server's key is not an error."""
    import subprocess
    import sys

    probe = ("import importlib.abc, sys\n"
             "class Block(importlib.abc.MetaPathFinder):\n"
             "    def find_spec(self, name, path, target=None):\n"
             f"        if name.split('.')[0] in {SERVER_ONLY!r}:\n"
             "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
             "sys.meta_path.insert(0, Block())\n"
             "from fleet_server.registry_cli import publish_command, ls_command\n"
             "from fleet_server.client import resolve_api_key\n"
             f"print(resolve_api_key(None, __import__('pathlib').Path({str(tmp_path)!r})))\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "EDGEFLEET_API_KEY"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
