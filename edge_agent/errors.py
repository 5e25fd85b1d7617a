"""The agent's error tree, and the one table that maps it to exit codes (both `agent infer` and `agent run`).

The table lives beside the errors it maps so the CLI modules import it from here: none of them imports another."""

from __future__ import annotations

# Exit codes: 2 bad input or configuration, 4 model package refused, 5 camera source, 6 inference backend,
# 1 any other agent error. (3 is `edgefleet`'s own "install the extra" code.)
EXIT_BAD_INPUT, EXIT_PACKAGE, EXIT_SOURCE, EXIT_BACKEND, EXIT_AGENT = 2, 4, 5, 6, 1
# `agent run` ended cleanly because the fleet asked for a restart (`restart_agent`): the service manager starts it
# again (systemd: `RestartForceExitStatus=75`). 75 is sysexits' EX_TEMPFAIL: "try again later".
EXIT_RESTART = 75


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class SourceError(AgentError):
    """A camera source failed: could not open, lost the stream, vanished."""


class EndOfStream(SourceError):
    """A finite source (a video file without looping) has no more frames."""


class BackendError(AgentError):
    """An inference backend could not load or run a model."""


class DeviceUnavailable(BackendError):
    """The requested accelerator (GPU, NPU) is not present; callers fall back and say why."""


class ConfigError(AgentError):
    """A desired state or local configuration that cannot be applied."""


class EnrollmentError(AgentError):
    """The server refused or could not be reached during enrollment."""


class ModelInstallError(AgentError):
    """A model could not be installed into a slot: missing, tampered with, unsigned, or not what was asked for.
    (``models.errors.PackageError`` is the package format's own error; this one is the agent's, around it.)"""


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code for an error the agent expects; None for a bug (let it raise with its traceback)."""
    from models.errors import PackageError

    if isinstance(exc, (PackageError, ModelInstallError)):
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
