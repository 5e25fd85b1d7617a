"""`edgefleet agent enroll`: turn a one-time token into this device's identity (edge_agent.fleet.enroll)."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_agent.errors import EXIT_AGENT, AgentError, exit_code_for
from edge_agent.fleet.enroll import enroll
from edge_agent.fleet.state import resolve_state_dir


def enroll_command(
    server: str = typer.Option(..., "--server", help="Fleet server URL, e.g. http://127.0.0.1:8080"),
    token: str = typer.Option(..., "--token", help="One-time enrollment token from `edgefleet token create`"),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Agent state dir (default ~/.edgefleet/agent)"),
    name: str | None = typer.Option(None, "--name", help="A human name for this device"),
    source: str | None = typer.Option(None, "--source", help="Camera to run: synthetic, file, /dev/videoN, rtsp://"),
    force: bool = typer.Option(False, "--force", help="Replace an existing identity in the state dir"),
) -> None:
    """Enroll this device with a fleet server."""
    root = resolve_state_dir(state_dir)
    try:
        config = enroll(server, token, root, name=name, source=source, force=force)
    except AgentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_for(exc) or EXIT_AGENT) from None
    typer.echo(f"enrolled as {config.device_id}; state in {root}; broker {config.broker_url}")
    typer.echo(f"next: edgefleet agent run --state-dir {root}")
