"""Remote commands: one registry of named handlers (:class:`CommandTable`), each answering with a ``CommandReply``.

The server sends ``Command{name, args, deadline}`` on ``cmd/{request_id}``; the agent answers on
``cmd/{request_id}/reply``. A command past its deadline is not started (a queued `reboot` that arrives a
day late must not run), an unknown name or arguments that do not fit the command's pydantic schema get
``ok=false`` with a reason, and a handler that raises becomes an error reply instead of a crash. A request id
seen before (QoS 1 redelivers after a lost PUBACK) is answered with the reply it got the first time, without
running again (:mod:`edge_agent.fleet.command_memory`). No handler runs a shell line or writes outside the
agent's state dir: the only process a command may start is `reboot`'s, a fixed argv from agent.json.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefleet.protocol import Command, CommandReply, utcnow

if TYPE_CHECKING:
    from edge_agent.fleet.command_memory import ReplyMemory

log = logging.getLogger(__name__)


class CommandFailed(Exception):
    """Raised by a handler to answer ok=false with this message (and, optionally, what it found)."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class Args(BaseModel):
    """Base of every command's arguments: unknown fields are refused, so a typo is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class NoArgs(Args):
    """For commands that take nothing."""


class LogsArgs(Args):
    lines: int = Field(100, ge=0, le=10_000, strict=True, description="how many of the last log lines")


class SetConfigArgs(Args):
    pipeline: dict[str, Any] = Field(description="pipeline fields to change, e.g. {\"score_threshold\": 0.7}")

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        """`{"score_threshold": 0.7}` is accepted as well as `{"pipeline": {...}}`."""
        if isinstance(data, dict) and "pipeline" not in data and data:
            return {"pipeline": data}
        return data


Handler = Callable[[Any], Any]


@dataclass(frozen=True)
class _Entry:
    handler: Handler
    args: type[Args]


@dataclass
class CommandTable:
    """Named handlers with their argument schemas; :meth:`handle` turns any command into exactly one reply."""

    entries: dict[str, _Entry] = field(default_factory=dict)
    memory: "ReplyMemory | None" = None
    handled: int = 0
    failed: int = 0
    duplicates: int = 0

    def register(self, name: str, handler: Handler, args: type[Args] = NoArgs) -> None:
        """``handler`` gets the validated ``args`` model instance."""
        if name in self.entries:
            raise ValueError(f"command {name!r} is registered twice")
        self.entries[name] = _Entry(handler, args)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def handle(self, command: Command, request_id: str | None = None) -> CommandReply:
        """The reply to ``command``; with a ``request_id`` seen before, the reply it got then (not run again)."""
        if request_id is not None and self.memory is not None:
            earlier = self.memory.get(request_id)
            if earlier is not None:
                self.duplicates += 1
                log.info("command %s (%s) was redelivered; answering with its first reply", command.name, request_id)
                return earlier
        reply = self._run(command)
        if request_id is not None and self.memory is not None:
            self.memory.remember(request_id, reply)
        return reply

    def _run(self, command: Command) -> CommandReply:
        self.handled += 1
        if command.deadline is not None and command.deadline < utcnow():
            return self._fail(command, f"deadline passed ({command.deadline.isoformat()}); not started")
        entry = self.entries.get(command.name)
        if entry is None:
            return self._fail(command, f"unknown command {command.name!r}; known: {', '.join(self.names())}")
        try:
            args = entry.args.model_validate(dict(command.args))
        except ValidationError as exc:
            return self._fail(command, f"bad arguments for {command.name}: {_first_problem(exc)}")
        try:
            result = entry.handler(args)
        except CommandFailed as exc:
            return self._fail(command, str(exc), exc.result)
        except Exception as exc:  # noqa: BLE001 - a failing handler answers, it does not crash the agent
            log.exception("command %s failed", command.name)
            return self._fail(command, f"{type(exc).__name__}: {exc}")
        return CommandReply(ok=True, result=result)

    def _fail(self, command: Command, error: str, result: Any = None) -> CommandReply:
        self.failed += 1
        log.warning("command %s refused: %s", command.name, error)
        return CommandReply(ok=False, error=error[:1000], result=result)


def _first_problem(exc: ValidationError) -> str:
    problems = exc.errors()
    first = problems[0]
    where = ".".join(repr(p) if isinstance(p, str) else str(p) for p in first.get("loc", ())) or "arguments"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {first.get('msg')}{more}"


def tail_lines(path: Any, count: int) -> list[str]:
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
    """What the built-in commands need from the agent (edge_agent.fleet.command_context implements these)."""

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

    def ping(args: NoArgs) -> dict[str, Any]:
        return {"pong": True, "ts": utcnow().isoformat(), "uptime_s": round(ctx.uptime_s(), 3)}

    def get_logs(args: LogsArgs) -> dict[str, Any]:
        return {"lines": tail_lines(ctx.log_file(), args.lines)}

    def get_config(args: NoArgs) -> dict[str, Any]:
        return ctx.describe_config()

    def set_config(args: SetConfigArgs) -> dict[str, Any]:
        if not args.pipeline:
            raise CommandFailed("set_config needs pipeline fields to change, e.g. {\"score_threshold\": 0.7}")
        return ctx.set_pipeline_config(args.pipeline)

    def restart_pipeline(args: NoArgs) -> dict[str, Any]:
        return ctx.restart_pipeline()

    def reboot(args: NoArgs) -> dict[str, Any]:
        if not ctx.allow_reboot:
            raise CommandFailed("reboot is not allowed on this device (allow_reboot is false in agent.json)")
        ctx.reboot()
        return {"rebooting": True}

    table.register("ping", ping)
    table.register("get_logs", get_logs, LogsArgs)
    table.register("get_config", get_config)
    table.register("set_config", set_config, SetConfigArgs)
    table.register("restart_pipeline", restart_pipeline)
    table.register("reboot", reboot)
    return table
