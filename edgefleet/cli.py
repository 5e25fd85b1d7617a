"""The `edgefleet` command. Each program owns its sub-commands; they are loaded by name only when used,
so a camera device with only the `agent` extra gets a working `edgefleet agent ...` and a clear
"install edgefleet[server]" for the rest instead of an ImportError."""

from __future__ import annotations

import sys

import click

from edgefleet.lazy_commands import LazyCommand, LazyGroup

COMMANDS = (
    LazyCommand("agent", "edge_agent.cli:agent_app", "agent", "Run on a camera device: enroll, run, infer, cameras."),
    LazyCommand("apikey", "fleet_server.cli:apikey_app", "server", "Create and list API keys."),
    LazyCommand("demo", "edgefleet.demo:demo_command", "server,agent", "Run the whole system on embedded defaults."),
    LazyCommand("devices", "fleet_server.cli:devices_app", "server", "List, inspect and manage devices."),
    LazyCommand("model", "edgefleet.model_cli:model_app", "agent",
                "Model packages: make, import, verify, publish, list."),
    LazyCommand("rollout", "fleet_server.rollout_cli:rollout_app", "server",
                "Roll a model out in waves: create, status, pause, resume, abort."),
    LazyCommand("server", "fleet_server.cli:server_app", "server", "Run the fleet server."),
    LazyCommand("sim", "edge_agent.cli.sim:sim_command", "agent", "Simulate N agents over real MQTT connections."),
    LazyCommand("token", "fleet_server.cli:token_app", "server", "Create and list enrollment tokens."),
    LazyCommand("train", "training.cli:train_command", "training", "Train, assess, quantize and package a model."),
)


class _Edgefleet(LazyGroup):
    lazy_commands = COMMANDS


@click.group(cls=_Edgefleet, help="edgefleet: train, package, deploy and run vision models on camera fleets.")
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
