"""`edgefleet agent enroll`: turn a one-time token into this device's identity (edge_agent.fleet.enroll).

The token can come from `--token`, `--token-file` or their environment variables, or from the systemd credential
`edgefleet-enroll-token` (what the unit `agent install-service --server` writes uses): on the command line it is
visible to every user of the device in the process list while it is still unused.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgefleet.secret_options import chosen_secret
from edge_agent.errors import EXIT_AGENT, AgentError, exit_code_for
from edge_agent.fleet.enroll import enroll
from edge_agent.fleet.state import StateDir, resolve_state_dir

TOKEN_CREDENTIAL = "edgefleet-enroll-token"


def given_token(ctx: typer.Context, token: str | None, token_file: Path | None) -> str:
    """The token from --token or --token-file (or their environment variables); none at all is a usage error."""
    chosen = chosen_secret(ctx, value=token, file=token_file, value_param="token", file_param="token_file",
                           ambiguous="give the token one way: --token or --token-file (or one of "
                                     "$EDGEFLEET_ENROLL_TOKEN / $EDGEFLEET_ENROLL_TOKEN_FILE)",
                           credential_name=TOKEN_CREDENTIAL)
    if not chosen:
        raise typer.BadParameter("an enrollment token is needed: --token-file, --token, $EDGEFLEET_ENROLL_TOKEN "
                                 f"or the systemd credential {TOKEN_CREDENTIAL}", param_hint="--token")
    return chosen


def enroll_command(
    ctx: typer.Context,
    server: str = typer.Option(..., "--server", help="Fleet server URL, e.g. https://fleet.example:8080 (plain http only to loopback)"),
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
    if_needed: bool = typer.Option(False, "--if-needed", help="Do nothing when the state dir already holds an "
                                                              "identity (a service's first start enrolls, later "
                                                              "ones need no token)"),
    ca_fingerprint: str | None = typer.Option(
        None, "--ca-fingerprint", envvar="EDGEFLEET_CA_FINGERPRINT",
        help="SHA-256 fingerprint of the fleet CA (printed by `edgefleet token create`): checked against the CA "
             "the server presents before the token is sent; needed for https with the fleet's own certificate"),
) -> None:
    """Enroll this device with a fleet server."""
    root = resolve_state_dir(state_dir)
    if if_needed and not force and StateDir(root).is_enrolled():
        typer.echo(f"already enrolled; state in {root}")
        return
    secret = given_token(ctx, token, token_file)
    try:
        config = enroll(server, secret, root, name=name, source=source, force=force,
                        ca_fingerprint=ca_fingerprint)
    except AgentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_for(exc) or EXIT_AGENT) from None
    typer.echo(f"enrolled as {config.device_id}; state in {root}; broker {config.broker_url}")
    typer.echo(f"next: edgefleet agent run --state-dir {root}")
