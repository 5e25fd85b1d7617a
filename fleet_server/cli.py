"""`edgefleet server|token|devices|apikey ...` (mounted lazily by edgefleet/cli.py).

Everything but `server run` talks to a running server over HTTP (`--server`, `--api-key` or `--api-key-file`,
defaulting to `$EDGEFLEET_SERVER` / `$EDGEFLEET_API_KEY` / `$EDGEFLEET_API_KEY_FILE` and, locally, the state
dir's first admin key file). A key given on the command line is visible to every user of the machine in the
process list; the file or the environment keeps it out of there.
`token create --db URL` works straight on the database, for bootstrapping before any server runs.
"""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from fleet_server.cli_output import (
    console,
    device_detail,
    devices_table,
    err_console,
    keys_table,
    print_json,
    tokens_table,
)
from edgefleet.secret_options import chosen_secret
from fleet_server.client import DEFAULT_SERVER, ClientError, FleetClient, resolve_api_key, resolve_ca_file
from fleet_server.errors import FleetError

server_app = typer.Typer(help="Run the fleet server.", no_args_is_help=True, add_completion=False)
token_app = typer.Typer(help="Create and list enrollment tokens.", no_args_is_help=True, add_completion=False)
devices_app = typer.Typer(help="List, inspect and decommission devices.", no_args_is_help=True, add_completion=False)
apikey_app = typer.Typer(help="Create and list API keys.", no_args_is_help=True, add_completion=False)

ServerOpt = Annotated[str, typer.Option("--server", envvar="EDGEFLEET_SERVER", help="server URL")]
KeyOpt = Annotated[str | None, typer.Option(
    "--api-key", envvar="EDGEFLEET_API_KEY",
    help="API key (efk_...). On the command line it shows in the process list: prefer --api-key-file or the "
         "environment variable")]
KeyFileOpt = Annotated[Path | None, typer.Option(
    "--api-key-file", envvar="EDGEFLEET_API_KEY_FILE",
    help="read the API key from this file (mode 0600 recommended) instead of passing it on the command line")]
StateOpt = Annotated[Path | None, typer.Option("--state-dir", help="server state dir (finds the local admin key)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]

_DURATION = re.compile(r"^(\d+)\s*([smhdw]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """'90', '90s', '15m', '1h', '7d', '2w' -> seconds."""
    m = _DURATION.match(text.strip().lower())
    if not m or int(m.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 1h, 7d")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs or []:
        for item in pair.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise typer.BadParameter(f"tag {item!r} must look like key=value")
            tags[key.strip()] = value.strip()
    return tags


def fail(message: str, code: int = 1) -> NoReturn:
    """The one place CLI errors become exit codes: 1 refused/failed, 2 bad usage (typer), 3 not reachable."""
    err_console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def given_api_key(ctx: typer.Context, api_key: str | None, api_key_file: Path | None) -> str | None:
    """The key from --api-key or --api-key-file (or their environment variables), if any."""
    return chosen_secret(ctx, value=api_key, file=api_key_file, value_param="api_key", file_param="api_key_file",
                         ambiguous="give the API key one way: --api-key or --api-key-file (or one of "
                                   "$EDGEFLEET_API_KEY / $EDGEFLEET_API_KEY_FILE)", credential_name="edgefleet-api-key")


def _client(ctx: typer.Context, server: str, api_key: str | None, state_dir: Path | None,
            api_key_file: Path | None = None) -> FleetClient:
    return FleetClient(server, resolve_api_key(given_api_key(ctx, api_key, api_key_file), state_dir),
                       ca_file=resolve_ca_file(server, state_dir))


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ClientError as exc:
        fail(str(exc), 3 if exc.status == 0 else 1)


# ------------------------------------------------------------------------------------------------ server


@server_app.callback()
def _server_group() -> None:
    """Run the fleet server (a group, so `server run` stays a sub-command as more are added)."""


@server_app.command("run")
def server_run(
    db: Annotated[str | None, typer.Option("--db", help="database URL (default: SQLite in the state dir)")] = None,
    broker: Annotated[str | None, typer.Option("--broker", help="embedded | mqtt://HOST:PORT | mqtts://HOST:PORT")] = None,
    host: Annotated[str | None, typer.Option("--host", help="HTTP bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="HTTP port (default 8080, 0 = free)")] = None,
    broker_port: Annotated[int | None, typer.Option("--broker-port", help="embedded broker port (0 = free)")] = None,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="server state dir")] = None,
    tls: Annotated[bool | None, typer.Option(
        "--tls/--no-tls", help="serve HTTPS (default: on for a non-loopback --host, off on loopback)")] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="HTTPS certificate chain (PEM); default: "
                                                                     "one from the fleet CA")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="key of --tls-cert (PEM)")] = None,
    tls_host: Annotated[list[str] | None, typer.Option(
        "--tls-host", help="extra DNS name or IP the fleet-CA certificates name (repeat)")] = None,
    insecure_http: Annotated[bool, typer.Option(
        "--insecure-http", help="allow plain HTTP on a non-loopback --host (development only)")] = False,
    broker_host: Annotated[str | None, typer.Option(
        "--broker-host", help="embedded broker bind address (default 127.0.0.1; others need TLS)")] = None,
    broker_tls: Annotated[bool | None, typer.Option(
        "--broker-tls/--no-broker-tls", help="TLS on the embedded broker (default: on off loopback)")] = None,
    insecure_broker: Annotated[bool, typer.Option(
        "--insecure-broker", help="start on an external broker that fails the security check (development)")] = False,
    signing_public_key: Annotated[Path | None, typer.Option(
        "--signing-public-key", help="model-signing PUBLIC key (PEM) when packages are signed elsewhere")] = None,
) -> None:
    """Run the server until Ctrl-C; prints where it serves, the broker address and the first admin key."""
    from pydantic import ValidationError

    from fleet_server.server import ServerStartError, start_server_in_thread
    from fleet_server.settings import ServerSettings

    given = {"db_url": db, "broker": broker, "host": host, "port": port, "embedded_broker_port": broker_port,
             "state_dir": state_dir, "tls": tls, "tls_cert_file": tls_cert, "tls_key_file": tls_key,
             "tls_hosts": tls_host or None, "insecure_http": insecure_http or None, "embedded_broker_host": broker_host,
             "embedded_broker_tls": broker_tls, "insecure_broker": insecure_broker or None,
             "signing_public_key_file": signing_public_key}
    try:
        settings = ServerSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        fail(f"bad settings: {exc.errors()[0]['msg']}", 2)
    try:
        handle = start_server_in_thread(settings, log_level="info")
    except ServerStartError as exc:
        fail(str(exc))
    _print_started(handle)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        if not handle.running:
            fail("server stopped unexpectedly")
    console.print("stopping...")
    handle.stop()


def _print_started(handle: Any) -> None:
    """Where it serves, the CA fingerprint devices pin, the broker, the database and the admin key."""
    from edgefleet.trust import certificate_fingerprint

    settings = handle.settings
    console.print(f"edgefleet server on [bold]{handle.url}[/]  (API docs {handle.url}/docs)")
    console.print(f"fleet CA fingerprint (SHA-256): {certificate_fingerprint(handle.fleet.ca.cert)}")
    console.print(f"MQTT broker: [bold]{handle.broker_url}[/] ({'embedded' if settings.embedded else 'external'})")
    console.print(f"database: {settings.database_url()}")
    if handle.admin_key_created:
        console.print(f"first admin API key (shown once; also in {handle.admin_key_file}, mode 0600):")
        console.print(f"  [bold yellow]{handle.admin_key}[/]")
    else:
        console.print(f"admin API key: in {handle.admin_key_file}")


# ------------------------------------------------------------------------------------------------ tokens


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    ttl: Annotated[str, typer.Option("--ttl", help="lifetime: 30m, 1h, 7d")] = "1h",
    uses: Annotated[int, typer.Option("--uses", min=1, help="how many devices may enroll with it")] = 1,
    tags: Annotated[list[str] | None, typer.Option("--tags", help="k=v (repeat, or comma-separate)")] = None,
    db: Annotated[str | None, typer.Option("--db", help="work on this database directly (no server needed)")] = None,
    json_out: JsonOpt = False, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None,
    api_key_file: KeyFileOpt = None, state_dir: StateOpt = None,
) -> None:
    """Create an enrollment token; the token itself is printed once."""
    body = {"ttl_s": parse_duration(ttl), "uses": uses, "tags": parse_tags(tags)}
    if db:
        created = _token_create_direct(db, body)
        created["ca_fingerprint"] = _local_ca_fingerprint(state_dir)
    else:
        client = _client(ctx, server, api_key, state_dir, api_key_file)
        created = _call(client.post, "/tokens", body)
        created["ca_fingerprint"] = _call(client.get, "/ca")["fingerprint_sha256"]
    if json_out:
        print_json(created)
        return
    if created["ca_fingerprint"]:  # before the token, which stays the last line for scripts
        console.print(f"fleet CA fingerprint (SHA-256): {created['ca_fingerprint']}\n"
                      f"enroll with: edgefleet agent enroll --server URL --ca-fingerprint {created['ca_fingerprint']}"
                      " --token-file FILE", soft_wrap=True)
    console.print(f"token (shown once, {created['uses_left']} use(s), expires {created['expires_at']}):")
    print(created["token"])


def _local_ca_fingerprint(state_dir: Path | None) -> str | None:
    """The fingerprint of the fleet CA in a local server state dir (for `token create --db`), if it exists."""
    from edgefleet import paths
    from edgefleet.trust import certificate_fingerprint

    ca = (state_dir or paths.default_state_dir() / "server") / "pki" / "ca.crt"
    return certificate_fingerprint(ca.read_bytes()) if ca.exists() else None


def _token_create_direct(db_url: str, body: dict[str, Any]) -> dict[str, Any]:
    from fleet_server.db import Database
    from fleet_server.schemas import TokenInfo
    from fleet_server.services import tokens

    database = Database(db_url)
    try:
        database.upgrade()
        with database.session() as session:
            row, plaintext = tokens.create_token(session, actor="cli:direct-db", ttl_s=body["ttl_s"],
                                                 uses=body["uses"], tags=body["tags"])
            return {**TokenInfo.model_validate(row).model_dump(mode="json"), "token": plaintext}
    except FleetError as exc:
        fail(str(exc))
    finally:
        database.dispose()


@token_app.command("ls")
def token_ls(ctx: typer.Context, json_out: JsonOpt = False, server: ServerOpt = DEFAULT_SERVER,
             api_key: KeyOpt = None, api_key_file: KeyFileOpt = None, state_dir: StateOpt = None) -> None:
    """List enrollment tokens (ids only; secrets are never stored)."""
    tokens = _call(_client(ctx, server, api_key, state_dir, api_key_file).get, "/tokens")
    print_json(tokens) if json_out else console.print(tokens_table(tokens))


# ------------------------------------------------------------------------------------------------ devices


@devices_app.command("ls")
def devices_ls(
    ctx: typer.Context,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="k=v filter (repeat to require several)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="include decommissioned devices")] = False,
    json_out: JsonOpt = False, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None,
    api_key_file: KeyFileOpt = None, state_dir: StateOpt = None,
) -> None:
    """List devices with their online state and whether their twin is in sync."""
    client = _client(ctx, server, api_key, state_dir, api_key_file)
    filters = [f"{k}={v}" for k, v in parse_tags(tag).items()]
    devices = _call(lambda: client.request("GET", "/devices",
                                           params={"tag": filters, "include_decommissioned": all_}))
    print_json(devices) if json_out else console.print(devices_table(devices))


@devices_app.command("show")
def devices_show(ctx: typer.Context, device_id: str, json_out: JsonOpt = False,
                 server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None, api_key_file: KeyFileOpt = None,
                 state_dir: StateOpt = None) -> None:
    """One device: status, last seen, desired and reported twin, in sync."""
    device = _call(_client(ctx, server, api_key, state_dir, api_key_file).get, f"/devices/{device_id}")
    print_json(device) if json_out else console.print(device_detail(device))


@devices_app.command("decommission")
def devices_decommission(ctx: typer.Context, device_id: str, json_out: JsonOpt = False,
                         server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None,
                         api_key_file: KeyFileOpt = None, state_dir: StateOpt = None) -> None:
    """Revoke a device's credentials and certificate; it can no longer connect."""
    device = _call(_client(ctx, server, api_key, state_dir, api_key_file).delete, f"/devices/{device_id}")
    if json_out:
        print_json(device)
    else:
        console.print(f"device {device_id} decommissioned (certificate {device.get('cert_serial')} revoked)")


# ------------------------------------------------------------------------------------------------ API keys


@apikey_app.command("create")
def apikey_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="admin | operator | viewer")],
    name: Annotated[str, typer.Option("--name", help="who or what uses it")] = "cli",
    json_out: JsonOpt = False, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None,
    api_key_file: KeyFileOpt = None, state_dir: StateOpt = None,
) -> None:
    """Create an API key (needs an admin key); the key is printed once."""
    if role not in ("admin", "operator", "viewer"):
        raise typer.BadParameter("role must be admin, operator or viewer", param_hint="--role")
    client = _client(ctx, server, api_key, state_dir, api_key_file)
    created = _call(client.post, "/apikeys", {"role": role, "name": name})
    if json_out:
        print_json(created)
        return
    console.print(f"{role} key {created['prefix']} (shown once):")
    print(created["key"])


@apikey_app.command("ls")
def apikey_ls(ctx: typer.Context, json_out: JsonOpt = False, server: ServerOpt = DEFAULT_SERVER,
              api_key: KeyOpt = None, api_key_file: KeyFileOpt = None, state_dir: StateOpt = None) -> None:
    """List API keys (prefixes and roles; secrets are never stored)."""
    keys = _call(_client(ctx, server, api_key, state_dir, api_key_file).get, "/apikeys")
    print_json(keys) if json_out else console.print(keys_table(keys))


# `devices cmd` (remote commands) and `server broker-config` live in modules of their own; importing them
# registers them on devices_app and server_app.
import fleet_server.broker_config_cli  # noqa: E402,F401
import fleet_server.command_cli  # noqa: E402,F401
