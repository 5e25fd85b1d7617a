"""`edgefleet agent ...`: the device's commands, and the one place agent errors become exit codes.

`infer` and `cameras` live here; `enroll` and `run` (the fleet-connected mode) and `edgefleet sim` are loaded
only when invoked, so `agent infer` on a device does not import MQTT or enrollment code, and a broken or missing
optional part makes only its own command fail, with a message."""

from __future__ import annotations

import importlib
from typing import Any

import click
import typer
import typer.main
from typer.core import TyperGroup

from edge_agent.infer_cli import infer_command

# Exit codes: 2 bad input or configuration, 4 model package refused, 5 camera source, 6 inference backend,
# 1 any other agent error. (3 is `edgefleet`'s own "install the extra" code.)
EXIT_BAD_INPUT, EXIT_PACKAGE, EXIT_SOURCE, EXIT_BACKEND, EXIT_AGENT = 2, 4, 5, 6, 1

_LAZY = {
    "enroll": ("edge_agent.enroll:enroll_command", "Enroll this device with a fleet server."),
    "run": ("edge_agent.run_cli:run_command", "Run the fleet-connected agent."),
}


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code for an error the agent expects; None for a bug (let it raise with its traceback)."""
    from edge_agent.errors import AgentError, BackendError, ConfigError, EnrollmentError, SourceError

    try:
        from models.errors import PackageError
    except ImportError:  # pragma: no cover - models ships with every install
        PackageError = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(exc, PackageError):
        return EXIT_PACKAGE
    if isinstance(exc, SourceError):
        return EXIT_SOURCE
    if isinstance(exc, BackendError):
        return EXIT_BACKEND
    if isinstance(exc, (ConfigError, EnrollmentError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, AgentError):
        return EXIT_AGENT
    return None


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
        from edge_agent.discovery.cli import cameras_command
    except ImportError as exc:
        typer.echo(f"camera discovery is not available in this install: {exc}", err=True)
        raise SystemExit(3) from None
    cameras_command(json_out)


def __getattr__(name: str) -> Any:
    """``sim_command`` for `edgefleet sim`, imported from edge_agent.sim only when asked for."""
    if name == "sim_command":
        from edge_agent.sim import sim_command

        return sim_command
    raise AttributeError(name)
