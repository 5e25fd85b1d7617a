"""Secrets given to a command (an enrollment token, an API key) by value or by file, either on the command line or
through the environment. A value in argv is visible to every user of the machine in the process list, so each
such option has a file form; the rules for choosing between them are written once here for every CLI."""

from __future__ import annotations

from pathlib import Path

import typer


def read_secret_file(path: Path) -> str:
    """A token or key kept in a file; surrounding whitespace (an editor's newline) is not part of it."""
    try:
        secret = Path(path).expanduser().read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


def on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether parameter `name` was given on the command line (not taken from the environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def chosen_secret(ctx: typer.Context, *, value: str | None, file: Path | None, value_param: str, file_param: str,
                  ambiguous: str) -> str | None:
    """The secret from the value option or the file option (None when neither is given). One given on the command
    line beats one from the environment; two at the same level are ambiguous: ``ambiguous`` is the usage error."""
    file_hint = "--" + file_param.replace("_", "-")
    if value and file:
        value_cli, file_cli = on_command_line(ctx, value_param), on_command_line(ctx, file_param)
        if value_cli == file_cli:
            raise typer.BadParameter(ambiguous, param_hint=file_hint)
        if value_cli:
            file = None
    if file is None:
        return value
    try:
        return read_secret_file(file)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=file_hint) from None
