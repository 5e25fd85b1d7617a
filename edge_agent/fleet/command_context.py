"""The agent's command table: the built-in commands (edge_agent.fleet.commands) and the maintenance ones
(`diagnostics`, `snapshot`, `list_cameras`, `self_test`, `restart_agent`), over one agent.

:class:`AgentCommands` is what the commands may touch of the agent (the `CommandContext`), so the handlers read
like the list of things a remote operator can do and the agent module keeps to wiring.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefleet import protocol
from edge_agent.errors import EXIT_RESTART
from edge_agent.fleet.command_memory import FILE_NAME, ReplyMemory
from edge_agent.fleet.commands import CommandContext, CommandFailed, CommandTable, NoArgs, builtin_commands
from edge_agent.fleet.diagnostics import recent_errors, report
from edge_agent.fleet.self_test import SelfTestArgs, self_test
from edge_agent.fleet.snapshot import SnapshotArgs, snapshot

if TYPE_CHECKING:
    from edge_agent.fleet.agent import Agent

log = logging.getLogger(__name__)


class AgentCommands(CommandContext):
    """The CommandContext of a running agent."""

    def __init__(self, agent: "Agent") -> None:
        self.agent = agent
        self.errors = recent_errors()

    @property
    def allow_reboot(self) -> bool:  # type: ignore[override]
        return self.agent.config.allow_reboot

    def uptime_s(self) -> float:
        return self.agent.collector.uptime_s()

    def log_file(self) -> Path:
        return self.agent.state.log_path

    def describe_config(self) -> dict[str, Any]:
        twin = self.agent.twin
        return {"agent": self.agent.config.model_dump(mode="json"), "camera": twin.camera,
                "pipeline": twin.pipeline_config.model_dump(mode="json"),
                "config_hash": protocol.config_hash(twin.pipeline_config),
                "reported": twin.reported().model_dump(mode="json")}

    def set_pipeline_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        return self.agent.twin.apply_pipeline_changes(changes)

    def restart_pipeline(self) -> dict[str, Any]:
        self.agent.host.restart()
        return {"restarted": True, "rebuilds": self.agent.host.rebuilds}

    def reboot(self) -> None:
        log.warning("rebooting on remote command")
        subprocess.Popen(self.agent.config.reboot_command)  # a fixed argv from agent.json, never a shell line

    # maintenance ---------------------------------------------------------------------------------------------
    def diagnostics(self, args: NoArgs) -> dict[str, Any]:
        agent = self.agent
        return report(agent_version=agent.agent_version, config=self.describe_config(), state_dir=agent.state.root,
                      errors=self.errors.recent(), last_error=agent.twin.last_error)

    def snapshot(self, args: SnapshotArgs) -> dict[str, Any]:
        return snapshot(self.agent.latest_result, args, camera=self.agent.twin.camera)

    def list_cameras(self, args: NoArgs) -> dict[str, Any]:
        from edge_agent.fleet.diagnostics import cameras

        try:
            found = cameras()
        except ImportError as exc:
            raise CommandFailed(f"cannot list cameras: {exc.name or exc} is not installed") from None
        return {**found, "current": self.agent.twin.camera}

    def self_test(self, args: SelfTestArgs) -> dict[str, Any]:
        agent = self.agent
        return self_test(agent.factory, agent.twin.model, agent.twin.pipeline_config, args)

    def restart_agent(self, args: NoArgs) -> dict[str, Any]:
        """Answered first; the agent then stops cleanly and `agent run` exits with EXIT_RESTART."""
        self.agent.exit_code = EXIT_RESTART
        return {"restarting": True, "exit_code": EXIT_RESTART}


def agent_commands(agent: "Agent") -> tuple[CommandTable, AgentCommands]:
    """The one command table of an agent, remembering replies in its state dir."""
    ctx = AgentCommands(agent)
    table = builtin_commands(ctx)
    table.register("diagnostics", ctx.diagnostics)
    table.register("snapshot", ctx.snapshot, SnapshotArgs)
    table.register("list_cameras", ctx.list_cameras)
    table.register("self_test", ctx.self_test, SelfTestArgs)
    table.register("restart_agent", ctx.restart_agent)
    table.memory = ReplyMemory(agent.state.root / FILE_NAME)
    return table, ctx
