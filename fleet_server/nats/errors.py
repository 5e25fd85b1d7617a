"""The one error type of the private NATS broker, so the server can tell "our broker is broken" apart
from its own errors and show the operator the message (which carries the broker's log tail)."""

from __future__ import annotations


class NatsError(RuntimeError):
    """nats-server is missing, too old, refused its configuration, or exited."""
