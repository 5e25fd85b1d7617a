"""`edgefleet agent run`: the fleet-connected mode from the command line."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer

from edge_agent.errors import EXIT_AGENT, AgentError, exit_code_for
from edge_agent.fleet.state import StateDir, resolve_state_dir

log = logging.getLogger(__name__)


def install_package(state: StateDir, package: Path) -> str:
    """Verify a local package with the fleet signing key, install it into the idle slot and make it active."""
    from edge_agent.fleet.slots import ModelSlots

    slots = ModelSlots(state.slots_dir, state.signing_key_path, state.packages_dir)
    info = slots.install(package)
    slots.activate(info.slot)
    return f"{info.manifest.name} {info.manifest.version} in slot {info.slot}"


def run_command(
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Agent state dir (default ~/.edgefleet/agent)"),
    source: str | None = typer.Option(None, "--source", help="Camera to run instead of the configured one"),
    model: Path | None = typer.Option(None, "--model", help="Install and run this signed model package first"),
) -> None:
    """Run the agent connected to its fleet until Ctrl-C or SIGTERM (or, after a remote `restart_agent`, exit with
    code 75 for the service manager to restart it)."""
    from edge_agent.fleet.agent import Agent

    state = StateDir(resolve_state_dir(state_dir))
    stopping = threading.Event()

    def _on_signal(signum, frame) -> None:  # noqa: ARG001
        stopping.set()

    # Handlers first: a SIGTERM while the agent starts (a service manager stopping it early) must still end in
    # a clean stop with the offline status published, not in Python's default exit.
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    agent = None
    try:
        config = state.load_config()
        if model is not None:
            typer.echo(f"installed {install_package(state, model)}")
        agent = Agent(config, state.root, source=source, log_to_file=True)
        agent.start()
        typer.echo(f"agent {config.device_id} running (broker {config.broker_url}); Ctrl-C to stop")
        while not stopping.wait(0.5) and agent.exit_code is None:
            pass
    except AgentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_for(exc) or EXIT_AGENT) from None
    finally:
        if agent is not None:
            agent.stop("agent stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo("stopped; status offline published")
    if agent is not None and agent.exit_code is not None:  # `restart_agent`: the service manager starts us again
        typer.echo(f"exiting with code {agent.exit_code} so the service manager restarts the agent")
        raise typer.Exit(agent.exit_code)
