"""The agent's error tree. The CLI maps these to exit codes in one place (edge_agent/cli.py)."""


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
