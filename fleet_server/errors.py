"""The server's error tree. HTTP status codes are assigned in one place: `fleet_server/api/errors.py`;
CLI exit codes in `fleet_server/cli.py`."""


class FleetError(Exception):
    """Base of every error the server raises on purpose; the message is safe to show to the caller."""


class NotFound(FleetError):
    """The device, token or key does not exist."""


class Conflict(FleetError):
    """The request clashes with the current state (e.g. changing a decommissioned device)."""


class InvalidInput(FleetError):
    """Well-formed JSON whose content cannot be used (a bad CSR, an invalid twin after merging)."""


class Unauthorized(FleetError):
    """No credential, or one that is not ours (forged, malformed, unknown)."""


class Forbidden(FleetError):
    """A genuine credential that may not do this (role too low, token expired or used up)."""


class TokenInvalid(Unauthorized):
    """An enrollment token that is malformed, unknown or does not match its stored hash."""


class TokenExpired(Forbidden):
    """An enrollment token past its expiry."""


class TokenUsedUp(Forbidden):
    """An enrollment token with no uses left (reused one-time token)."""


class CsrInvalid(InvalidInput):
    """A CSR that does not parse, is not self-signed correctly, or uses an unsupported key."""


class PayloadTooLarge(FleetError):
    """A request body over the server's size limit; refused before the body is parsed or stored."""


class RateLimited(FleetError):
    """Too many refused attempts from one source; `retry_after_s` says when the next one may succeed and
    `kind` which limit was reached (a label of the refusal counter)."""

    def __init__(self, message: str, retry_after_s: int, kind: str = "rate_limited") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.kind = kind


class Unavailable(FleetError):
    """A dependency (the broker) is not reachable right now; the change was kept and will be sent later."""


class BridgeError(FleetError):
    """The MQTT bridge could not do what was asked: bad settings, or a message not handed to the broker (not
    connected, refused by paho, or not acknowledged in time; the typed `edgefleet.mqtt` error is its cause).
    A message that was not sent is kept by the caller and sent again later (desired twins are republished at
    every reconnect). In the rare race with a connection loss, paho may still deliver a QoS 1 message after
    reconnecting, so receivers must tolerate a duplicate (commands carry a request id for that)."""
