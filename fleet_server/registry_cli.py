"""`edgefleet model publish` and `edgefleet model ls --server`: the server's model registry from the command line
(mounted lazily into `edgefleet model` by edgefleet/model_cli.py).

They need only httpx, which the agent extra has, so a build machine without the server publishes too.
`model ls` without `--server` is the local registry's `model list`, so one command lists either; `--server` has
no environment default there, so a `$EDGEFLEET_SERVER` set for other commands never changes what `ls` shows.
Exit codes: 0 ok, 1 refused or failed (no such key, a clash with a published version), 2 bad input (no such
file, a package the server refused as unsigned or altered, one over its size limit), 3 server not reachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from edgefleet.paths import default_state_dir
from fleet_server.cli import JsonOpt, KeyFileOpt, KeyOpt, ServerOpt, fail, given_api_key
from fleet_server.cli_output import console, print_json
from fleet_server.client import DEFAULT_SERVER, ClientError, FleetClient, resolve_api_key, resolve_ca_file

BAD_INPUT_STATUSES = {413, 422}  # the package itself was refused: as bad input as a missing file
StateDirOpt = Annotated[Path | None, typer.Option(
    "--state-dir", help="edgefleet state directory (default: $EDGEFLEET_STATE_DIR or ~/.edgefleet); a local "
                        "server's admin key is found in its server/ folder")]
NameOpt = Annotated[str | None, typer.Option("--name", help="only this model")]


def _client(ctx: typer.Context, server: str, api_key: str | None, api_key_file: Path | None,
            state_dir: Path | None) -> FleetClient:
    server_state = (state_dir or default_state_dir()) / "server"
    return FleetClient(server, resolve_api_key(given_api_key(ctx, api_key, api_key_file), server_state),
                       ca_file=resolve_ca_file(server, server_state))


def _failed(exc: ClientError) -> NoReturn:
    fail(str(exc), 3 if exc.status == 0 else 2 if exc.status in BAD_INPUT_STATUSES else 1)


def publish_command(
    ctx: typer.Context,
    pkg: Annotated[Path, typer.Argument(help="the signed .efpkg file")],
    json_out: JsonOpt = False, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None,
    api_key_file: KeyFileOpt = None, state_dir: StateDirOpt = None,
) -> None:
    """Upload a signed package to the fleet server's model registry (needs an operator key). The server checks
    its signature against the fleet's key; publishing the same file again changes nothing."""
    if not pkg.is_file():
        fail(f"no package file at {pkg}", 2)
    client = _client(ctx, server, api_key, api_key_file, state_dir)
    try:
        status, view = client.upload("/models", pkg)
    except ClientError as exc:
        _failed(exc)
    created = status == 201
    if json_out:
        print_json({**view, "created": created})
        return
    what = "published" if created else "already published (same sha256)"
    console.print(f"[green]{what}[/] {escape(view['name'])} {escape(view['version'])} ({view['precision']}, "
                  f"{view['size'] / 1e6:.2f} MB) sha256 {view['sha256']}")
    if not view["deployable"]:
        console.print(f"[yellow]not deployable:[/] {escape('; '.join(view['flags']) or 'flagged by training')}")


def ls_command(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(
        "--server", help="list the registry of the fleet server at this URL instead of the local one")] = None,
    name: NameOpt = None,
    json_out: JsonOpt = False,
    registry: Annotated[Path | None, typer.Option("--registry", help="local registry directory (default: models/ "
                                                  "in the state directory)")] = None,
    api_key: KeyOpt = None, api_key_file: KeyFileOpt = None, state_dir: StateDirOpt = None,
) -> None:
    """List model packages: the local registry's, or with --server the fleet server's."""
    if server is None:
        from models.cli import list_command

        list_command(registry=registry, name=name, as_json=json_out, state_dir=state_dir)
        return
    if registry is not None:
        raise typer.BadParameter("--registry is a local registry; with --server the server's is listed",
                                 param_hint="--registry")
    client = _client(ctx, server, api_key, api_key_file, state_dir)
    try:
        found = client.get("/models", name=name)
    except ClientError as exc:
        _failed(exc)
    print_json(found) if json_out else console.print(_table(server, found))


def _table(server: str, found: list[dict[str, Any]]) -> Table:
    table = Table(title=f"model registry of {escape(server)}: {len(found)} package(s)", title_justify="left")
    for column in ("name", "version", "precision", "deployable", "size", "uploaded", "by", "sha256"):
        table.add_column(column)
    for m in found:
        table.add_row(escape(m["name"]), escape(m["version"]), m["precision"],
                      "yes" if m["deployable"] else "[red]no[/]", f"{m['size'] / 1e6:.2f} MB",
                      m["uploaded_at"].replace("T", " ")[:16], escape(m["uploaded_by"]), m["sha256"][:12])
    return table
