"""`edgefleet agent ...`: the device's commands (exit codes: edge_agent.errors.exit_code_for).

`infer` and `cameras` live here; `enroll` and `run` (the fleet-connected mode) and `edgefleet sim` are loaded
only when invoked, so `agent infer` on a device does not import MQTT or enrollment code, and a broken or missing
optional part makes only its own command fail, with a message."""

from __future__ import annotations

import importlib

import click
import typer
import typer.main
from typer.core import TyperGroup

from edge_agent.cli.infer import infer_command

_LAZY = {
    "enroll": ("edge_agent.cli.enroll:enroll_command", "Enroll this device with a fleet server."),
    "run": ("edge_agent.cli.run:run_command", "Run the fleet-connected agent."),
}


def _unavailable(name: str, help_text: str, error: Exception) -> click.Command:
    def fail() -> None:
        typer.echo(f"`edgefleet agent {name}` is not available in this install: {error}", err=True)
        raise SystemExit(3)

    return click.Command(name, callback=fail, help=help_text,
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


def _load(name: str) -> click.Command:
    target, help_text = _LAZY[name]
    module, attr = target.split(":")
    try:
        func = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        return _unavailable(name, help_text, exc)
    app = typer.Typer(add_completion=False)
    app.command(name=name, help=func.__doc__ or help_text)(func)
    command = typer.main.get_command(app)
    command.name = name
    return command


class _AgentGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY:
            return _load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, (super(_AgentGroup, self).get_command(ctx, n).get_short_help_str(60)))
                for n in super().list_commands(ctx)]
        rows += [(n, h) for n, (_, h) in _LAZY.items()]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


agent_app = typer.Typer(cls=_AgentGroup, add_completion=False, no_args_is_help=True,
                        help="Run on a camera device: infer locally, list cameras, enroll, run.")
agent_app.command("infer")(infer_command)


@agent_app.command("cameras")
def cameras(json_out: bool = typer.Option(False, "--json", help="Print the cameras as JSON")) -> None:
    """List the video4linux cameras present now (vendor, model, serial, /dev path)."""
    try:
        from edge_agent.cli.cameras import cameras_command
    except ImportError as exc:
        typer.echo(f"camera discovery is not available in this install: {exc}", err=True)
        raise SystemExit(3) from None
    cameras_command(json_out)
