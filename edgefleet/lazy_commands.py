"""Commands that need an optional extra: declared by name, listed without importing them, loaded when used.

A camera device installs only ``edgefleet[agent]``; `edgefleet --help` must still list `server`, and
`edgefleet server` must say which extra to install instead of printing an ImportError. One declaration,
:class:`LazyCommand`, says where a command lives and what it needs; :class:`LazyGroup` (a plain click group) and
:class:`LazyTyperGroup` (a typer group, for typer's help layout) list the declared commands from the declaration
alone and import a command only to run it or show its own help. A missing third-party module gives one message
and exit code 3; a missing module of ours is a bug and is raised as it is (see :mod:`edgefleet.extras`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import click
import typer
import typer.exceptions
import typer.main
from typer.core import TyperGroup

from edgefleet.extras import is_missing_extra

EXIT_MISSING_EXTRA = 3
_PASS_EVERYTHING = {"ignore_unknown_options": True, "allow_extra_args": True}


@dataclass(frozen=True)
class LazyCommand:
    """Command ``name`` is ``target`` ("module:attribute": a typer.Typer app or a function typer can wrap), whose
    imports need the pip extra ``extra``. ``summary`` is the line a group's --help lists without importing it;
    ``help``, when given, replaces the target's own help (its docstring) once loaded."""

    name: str
    target: str
    extra: str
    summary: str
    help: str | None = None


def missing_extra_message(command_path: str, extra: str, error: ImportError) -> str:
    return (f"`{command_path}` needs packages that are not installed ({error.name or error}).\n"
            f"Install them with: pip install 'edgefleet[{extra}]'")


def missing_extra_command(spec: LazyCommand, error: ImportError) -> click.Command:
    """A stand-in that takes any arguments and says which extra to install (exit 3), so the rest of the CLI
    keeps working on an install without it."""

    @click.pass_context
    def fail(ctx: click.Context) -> None:
        typer.echo(missing_extra_message(ctx.command_path, spec.extra, error), err=True)
        raise SystemExit(EXIT_MISSING_EXTRA)

    return click.Command(spec.name, callback=fail, help=spec.help or spec.summary, context_settings=_PASS_EVERYTHING)


def load_command(spec: LazyCommand) -> Any:
    """Import ``spec.target`` and make it a command named ``spec.name``. A missing third-party dependency gives
    :func:`missing_extra_command`; an ImportError of our own packages is re-raised (a bug, not an install)."""
    module_name, _, attr = spec.target.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        if not is_missing_extra(exc):
            raise
        return missing_extra_command(spec, exc)
    command = typer.main.get_command(target if isinstance(target, typer.Typer) else _single(target))
    command.name = spec.name
    if spec.help is not None:
        command.help = spec.help
    elif not command.help:
        command.help = spec.summary
    return command


def _single(func: Callable[..., Any]) -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command()(func)
    return app


def _listing_entry(spec: LazyCommand) -> click.Command:
    """What a group's --help shows for a command it has not imported; never invoked (see get_command)."""
    return click.Command(spec.name, help=spec.help or spec.summary, short_help=spec.summary)


class _LazyCommands:
    """The part both group flavours share. Declared commands sit in ``commands`` as listing entries, so listing,
    ordering and "did you mean" suggestions treat them like the rest; ``get_command`` loads the real one, except
    while help is being formatted."""

    lazy_commands: ClassVar[tuple[LazyCommand, ...]] = ()
    commands: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False
        for spec in self.lazy_commands:
            if spec.name in self.commands:
                raise ValueError(f"command {spec.name!r} is declared lazily and also registered")
            self.commands[spec.name] = _listing_entry(spec)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        spec = next((s for s in self.lazy_commands if s.name == cmd_name), None)
        if spec is None or self._listing:
            return super().get_command(ctx, cmd_name)  # type: ignore[misc]
        return load_command(spec)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # Listing must not import every command (that is the point of loading them lazily).
        self._listing = True
        try:
            super().format_help(ctx, formatter)  # type: ignore[misc]
        finally:
            self._listing = False


class LazyGroup(_LazyCommands, click.Group):
    """A click group whose declared commands load on use. Subclass it and set ``lazy_commands``."""

    def invoke(self, ctx: click.Context) -> Any:
        # typer (0.29) ships its own copy of click, so its Exit/usage errors are not click's: translate them
        # here, once, so every mounted program gets usage messages and exit codes instead of tracebacks.
        try:
            return super().invoke(ctx)
        except typer.Exit as exc:
            ctx.exit(exc.exit_code)
        except typer.Abort:
            raise click.Abort() from None
        except typer.exceptions.TyperException as exc:
            exc.show()  # type: ignore[attr-defined]
            ctx.exit(exc.exit_code)


class LazyTyperGroup(_LazyCommands, TyperGroup):
    """The same for a typer app (``typer.Typer(cls=...)``), which keeps typer's help layout. Subclass it and set
    ``lazy_commands``; the app's own ``@app.command`` commands are listed first, in the order registered."""
