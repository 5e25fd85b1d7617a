"""Secrets given to a command (an enrollment token, an API key) by value or by file, either on the command line or
through the environment, or as a systemd credential. A value in argv is visible to every user of the machine in the
process list, so each such option has a file form; the rules for choosing between them are written once here for
every CLI.

A service started by systemd with `LoadCredential=ID:PATH` finds the secret in `$CREDENTIALS_DIRECTORY/ID`: a
copy only that service's user can read, on non-swappable memory, so the secret's own file can stay root-only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


def credential(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The systemd credential `name` (whitespace stripped), or None when the process has no credentials
    directory, or none by that name, or an empty one (a unit's `SetCredential=ID:` fallback, meaning "not
    given"). One that exists but cannot be read is a ValueError: a mistake in the unit, worth saying."""
    directory = (os.environ if env is None else env).get(CREDENTIALS_ENV)
    if not directory:
        return None
    path = Path(directory) / name
    if not path.exists():
        return None
    try:
        return path.read_text().strip() or None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read credential {path}: {exc}") from None


def on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether parameter `name` was given on the command line (not taken from the environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def chosen_secret(ctx: typer.Context, *, value: str | None, file: Path | None, value_param: str, file_param: str,
                  ambiguous: str, credential_name: str | None = None) -> str | None:
    """The secret from the value option or the file option, else from the systemd credential `credential_name`
    (None when none is given). One given on the command line beats one from the environment; two at the same
    level are ambiguous: ``ambiguous`` is the usage error."""
    file_hint = "--" + file_param.replace("_", "-")
    if value and file:
        value_cli, file_cli = on_command_line(ctx, value_param), on_command_line(ctx, file_param)
        if value_cli == file_cli:
            raise typer.BadParameter(ambiguous, param_hint=file_hint)
        if value_cli:
            file = None
    if file is None:
        if value or not credential_name:
            return value
        try:
            return credential(credential_name)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=file_hint) from None
    try:
        return read_secret_file(file)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=file_hint) from None
