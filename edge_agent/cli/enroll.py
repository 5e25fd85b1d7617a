"""`edgefleet agent enroll`: turn a one-time token into this device's identity (edge_agent.fleet.enroll).

The token can come from `--token`, `--token-file` or their environment variables: on the command line it is
visible to every user of the device in the process list while it is still unused.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edge_agent.errors import EXIT_AGENT, AgentError, exit_code_for
from edge_agent.fleet.enroll import enroll
from edge_agent.fleet.state import resolve_state_dir


def _read_token_file(path: Path) -> str:
    try:
        token = path.expanduser().read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--token-file") from None
    if not token:
        raise typer.BadParameter(f"{path} is empty", param_hint="--token-file")
    return token


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def given_token(ctx: typer.Context, token: str | None, token_file: Path | None) -> str:
    """The token from --token or --token-file. One on the command line beats one from the environment; two
    at the same level, or none at all, is a usage error."""
    if token and token_file:
        token_cli, file_cli = _on_command_line(ctx, "token"), _on_command_line(ctx, "token_file")
        if token_cli == file_cli:
            raise typer.BadParameter("give the token one way: --token or --token-file (or one of "
                                     "$EDGEFLEET_ENROLL_TOKEN / $EDGEFLEET_ENROLL_TOKEN_FILE)", param_hint="--token")
        if token_cli:
            token_file = None
    if token_file is not None:
        return _read_token_file(token_file)
    if not token:
        raise typer.BadParameter("an enrollment token is needed: --token-file, --token or $EDGEFLEET_ENROLL_TOKEN",
                                 param_hint="--token")
    return token


def enroll_command(
    ctx: typer.Context,
    server: str = typer.Option(..., "--server", help="Fleet server URL, e.g. http://127.0.0.1:8080"),
    token: str | None = typer.Option(
        None, "--token", envvar="EDGEFLEET_ENROLL_TOKEN",
        help="One-time enrollment token from `edgefleet token create`. On the command line it shows in the "
             "process list: prefer --token-file or the environment variable"),
    token_file: Path | None = typer.Option(
        None, "--token-file", envvar="EDGEFLEET_ENROLL_TOKEN_FILE",
        help="Read the enrollment token from this file instead of passing it on the command line"),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Agent state dir (default ~/.edgefleet/agent)"),
    name: str | None = typer.Option(None, "--name", help="A human name for this device"),
    source: str | None = typer.Option(None, "--source", help="Camera to run: synthetic, file, /dev/videoN, rtsp://"),
    force: bool = typer.Option(False, "--force", help="Replace an existing identity in the state dir"),
) -> None:
    """Enroll this device with a fleet server."""
    secret = given_token(ctx, token, token_file)
    root = resolve_state_dir(state_dir)
    try:
        config = enroll(server, secret, root, name=name, source=source, force=force)
    except AgentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_for(exc) or EXIT_AGENT) from None
    typer.echo(f"enrolled as {config.device_id}; state in {root}; broker {config.broker_url}")
    typer.echo(f"next: edgefleet agent run --state-dir {root}")
