"""`edgefleet agent ...`: the device's commands (exit codes: edge_agent.errors.exit_code_for).

`infer` and `cameras` live here; `enroll` and `run` (the fleet-connected mode) and `edgefleet sim` are loaded
only when invoked, so `agent infer` on a device does not import MQTT or enrollment code, and a missing optional
part makes only its own command fail, with a message."""

from __future__ import annotations

import typer

from edge_agent.cli.infer import infer_command
from edgefleet.extras import is_missing_extra
from edgefleet.lazy_commands import EXIT_MISSING_EXTRA, LazyCommand, LazyTyperGroup, missing_extra_message

FLEET_COMMANDS = (
    LazyCommand("enroll", "edge_agent.cli.enroll:enroll_command", "agent", "Enroll this device with a fleet server."),
    LazyCommand("run", "edge_agent.cli.run:run_command", "agent",
                "Run the agent connected to its fleet until Ctrl-C or SIGTERM."),
    LazyCommand("install-service", "edge_agent.cli.service:install_service_command", "agent",
                "Write the systemd unit that runs this device's agent."),
)


class _AgentGroup(LazyTyperGroup):
    lazy_commands = FLEET_COMMANDS

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return sorted(super().list_commands(ctx))


agent_app = typer.Typer(cls=_AgentGroup, add_completion=False, no_args_is_help=True,
                        help="Run on a camera device: infer locally, list cameras, enroll, run.")
agent_app.command("infer")(infer_command)


@agent_app.command("cameras")
def cameras(json_out: bool = typer.Option(False, "--json", help="Print the cameras as JSON"),
            watch: bool = typer.Option(False, "--watch", help="Then print cameras as they are plugged in and out "
                                                               "until Ctrl-C (udev hot-plug)")) -> None:
    """List the video4linux cameras present now (vendor, model, serial, /dev path)."""
    try:
        from edge_agent.cli.cameras import cameras_command, watch_cameras
    except ImportError as exc:
        if not is_missing_extra(exc):
            raise
        typer.echo(missing_extra_message("edgefleet agent cameras", "agent", exc), err=True)
        raise SystemExit(EXIT_MISSING_EXTRA) from None
    cameras_command(json_out)
    if watch:
        watch_cameras()
