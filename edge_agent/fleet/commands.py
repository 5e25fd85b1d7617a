"""Remote commands: a small registry of named handlers, each answering with a ``CommandReply``.

The server sends ``Command{name, args, deadline}`` on ``cmd/{request_id}``; the agent answers on
``cmd/{request_id}/reply``. A command past its deadline is not started (a queued `reboot` that arrives a
day late must not run), an unknown name or bad arguments get ``ok=false`` with a reason, and a handler that
raises becomes an error reply instead of a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgefleet.protocol import Command, CommandReply, utcnow

log = logging.getLogger(__name__)


class CommandFailed(Exception):
    """Raised by a handler to answer ok=false with this message."""


Handler = Callable[[dict[str, Any]], Any]


@dataclass
class CommandTable:
    """Named handlers; :meth:`handle` turns any command into exactly one reply."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    handled: int = 0
    failed: int = 0

    def register(self, name: str, handler: Handler) -> None:
        if name in self.handlers:
            raise ValueError(f"command {name!r} is registered twice")
        self.handlers[name] = handler

    def names(self) -> list[str]:
        return sorted(self.handlers)

    def handle(self, command: Command) -> CommandReply:
        self.handled += 1
        if command.deadline is not None and command.deadline < utcnow():
            return self._fail(command, f"deadline passed ({command.deadline.isoformat()}); not started")
        handler = self.handlers.get(command.name)
        if handler is None:
            return self._fail(command, f"unknown command {command.name!r}; known: {', '.join(self.names())}")
        try:
            result = handler(dict(command.args))
        except CommandFailed as exc:
            return self._fail(command, str(exc))
        except Exception as exc:  # noqa: BLE001 - a failing handler answers, it does not crash the agent
            log.exception("command %s failed", command.name)
            return self._fail(command, f"{type(exc).__name__}: {exc}")
        return CommandReply(ok=True, result=result)

    def _fail(self, command: Command, error: str) -> CommandReply:
        self.failed += 1
        log.warning("command %s refused: %s", command.name, error)
        return CommandReply(ok=False, error=error)


def int_arg(args: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    """Read an integer argument within [low, high] or refuse with a clear message."""
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CommandFailed(f"argument {name!r} must be an integer in [{low}, {high}], got {value!r}")
    return value


def tail_lines(path, count: int) -> list[str]:
    """The last ``count`` lines of a text file, read from the end so a large log costs little."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            block, data = 8192, b""
            while size > 0 and data.count(b"\n") <= count:
                step = min(block, size)
                size -= step
                fh.seek(size)
                data = fh.read(step) + data
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:] if count else []


class CommandContext:
    """What the built-in commands need from the agent (the Agent implements these)."""

    allow_reboot: bool = False

    def uptime_s(self) -> float: ...

    def log_file(self): ...

    def describe_config(self) -> dict[str, Any]: ...

    def set_pipeline_config(self, changes: dict[str, Any]) -> dict[str, Any]: ...

    def restart_pipeline(self) -> dict[str, Any]: ...

    def reboot(self) -> None: ...


def builtin_commands(ctx: CommandContext) -> CommandTable:
    """ping, get_logs, get_config, set_config, restart_pipeline and reboot (refused unless allowed)."""
    table = CommandTable()

    def ping(args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "ts": utcnow().isoformat(), "uptime_s": round(ctx.uptime_s(), 3)}

    def get_logs(args: dict[str, Any]) -> dict[str, Any]:
        count = int_arg(args, "lines", 100, 0, 10_000)
        return {"lines": tail_lines(ctx.log_file(), count)}

    def get_config(args: dict[str, Any]) -> dict[str, Any]:
        return ctx.describe_config()

    def set_config(args: dict[str, Any]) -> dict[str, Any]:
        changes = args.get("pipeline", args)
        if not isinstance(changes, dict) or not changes:
            raise CommandFailed("set_config needs pipeline fields to change, e.g. {\"score_threshold\": 0.7}")
        return ctx.set_pipeline_config(changes)

    def restart_pipeline(args: dict[str, Any]) -> dict[str, Any]:
        return ctx.restart_pipeline()

    def reboot(args: dict[str, Any]) -> dict[str, Any]:
        if not ctx.allow_reboot:
            raise CommandFailed("reboot is not allowed on this device (allow_reboot is false in agent.json)")
        ctx.reboot()
        return {"rebooting": True}

    for name, handler in [("ping", ping), ("get_logs", get_logs), ("get_config", get_config),
                          ("set_config", set_config), ("restart_pipeline", restart_pipeline), ("reboot", reboot)]:
        table.register(name, handler)
    return table
