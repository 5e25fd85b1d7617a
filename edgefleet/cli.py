"""The `edgefleet` command. Each program owns its sub-commands; they are loaded by name only when used,
so a camera device with only the `agent` extra gets a working `edgefleet agent ...` and a clear
"install edgefleet[server]" for the rest instead of an ImportError."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import click
import typer
import typer.exceptions
import typer.main


@dataclass(frozen=True)
class _Mount:
    target: str  # "module:attribute" naming a typer.Typer app or a plain function
    extra: str  # the pip extra that brings its dependencies
    help: str


_OWN_PACKAGES = {"edgefleet", "models", "training", "fleet_server", "edge_agent"}

MOUNTS: dict[str, _Mount] = {
    "demo": _Mount("edgefleet.demo:demo_command", "server,agent", "Run the whole system on embedded defaults."),
    "server": _Mount("fleet_server.cli:server_app", "server", "Run the fleet server."),
    "token": _Mount("fleet_server.cli:token_app", "server", "Create and list enrollment tokens."),
    "devices": _Mount("fleet_server.cli:devices_app", "server", "List, inspect and manage devices."),
    "apikey": _Mount("fleet_server.cli:apikey_app", "server", "Create and list API keys."),
    "agent": _Mount("edge_agent.cli:agent_app", "agent", "Run on a camera device: enroll, run, infer, cameras."),
    "sim": _Mount("edge_agent.cli.sim:sim_command", "agent", "Simulate N agents over real MQTT connections."),
    "train": _Mount("training.cli:train_command", "training", "Train, assess, quantize and package a model."),
    "model": _Mount("edgefleet.model_cli:model_app", "agent", "Model packages: package, verify, bench, quantize."),
}


def _missing_extra_command(name: str, mount: _Mount, error: ImportError) -> click.Command:
    def _fail() -> None:
        typer.echo(
            f"`edgefleet {name}` needs packages that are not installed ({error.name or error}).\n"
            f"Install them with: pip install 'edgefleet[{mount.extra}]'",
            err=True,
        )
        raise SystemExit(3)

    return click.Command(name, callback=_fail, help=mount.help, context_settings={"ignore_unknown_options": True,
                                                                                   "allow_extra_args": True})


def load_command(name: str) -> click.Command | None:
    mount = MOUNTS.get(name)
    if mount is None:
        return None
    module_name, attr = mount.target.split(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in _OWN_PACKAGES:
            raise  # our own code is broken: say so, do not blame the user's install
        return _missing_extra_command(name, mount, exc)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        command = typer.main.get_command(_single(target))
    command.name = name
    command.help = command.help or mount.help
    return command


def _single(func) -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command()(func)
    return app


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        # typer (0.29) ships its own copy of click, so its Exit/usage errors are not click's: translate them
        # here, once, so every mounted program gets usage messages and exit codes instead of tracebacks.
        try:
            return super().invoke(ctx)
        except typer.Exit as exc:
            ctx.exit(exc.exit_code)
        except typer.Abort:
            raise click.Abort() from None
        except typer.exceptions.TyperException as exc:
            exc.show()
            ctx.exit(exc.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(MOUNTS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing must not import every program (that is the point of lazy loading).
        with formatter.section("Commands"):
            formatter.write_dl([(name, MOUNTS[name].help) for name in sorted(MOUNTS)])


@click.group(cls=LazyGroup, help="edgefleet: train, package, deploy and run vision models on camera fleets.")
@click.version_option(package_name="edgefleet")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def cli(verbose: int) -> None:
    import logging

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    cli(prog_name="edgefleet")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
