"""The MQTT plumbing the server's bridge and the agent's link share: the broker URL, the client TLS context, typed
connection errors (paho's reason and return codes are mapped to them here and nowhere else) and the jittered
reconnect backoff.

Standard library only. paho's objects (clients, reason codes, message infos) are used through their methods and
attributes, and paho itself is imported only for its error texts, so `edgefleet` still imports on an install that has
neither the agent nor the server extra.
"""

from __future__ import annotations

import ipaddress
import random
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefleet.backoff import Backoff

DEFAULT_PORTS = {False: 1883, True: 8883}
_FORM = "mqtt://HOST:PORT or mqtts://HOST:PORT"
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<netloc>[^/?#]*)(?P<rest>.*)", re.DOTALL)
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9_-]+(?:\.(?!-)[A-Za-z0-9_-]+)*\.?", re.ASCII)
_BRACKETED = re.compile(r"\[(?P<host>[^\]]*)\](?::(?P<port>.*))?", re.DOTALL)


# ------------------------------------------------------------------------------------------------ errors
class MqttError(Exception):
    """Base of the errors raised about an MQTT connection; the message is meant for the operator."""


class BrokerUrlError(MqttError, ValueError):
    """A broker URL that cannot be used. Also a ValueError, so a pydantic validator that parses one reports it
    as an ordinary validation error with this message."""


class ConnectionRefused(MqttError):
    """The broker answered the CONNECT with a refusal. `code` is the MQTT 5 reason code (paho reports MQTT 3.1.1
    return codes with their MQTT 5 equivalents), `reason` its text, e.g. "Not authorized"."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the broker refused the connection: {reason}")
        self.code = code
        self.reason = reason

    @property
    def credentials_refused(self) -> bool:
        """True when retrying with the same login cannot help (as opposed to a busy or unavailable broker)."""
        return self.code in _CREDENTIAL_CODES


class NotConnected(MqttError):
    """There is no accepted connection, so the message was not sent."""


class PublishFailed(MqttError):
    """paho refused the message (queue full) or dropped it (connection lost before it went out)."""


class PublishTimeout(MqttError):
    """The broker did not acknowledge a QoS 1/2 message in time; it may still arrive (receivers must tolerate a
    duplicate when it is sent again)."""


# MQTT 3.1.1 CONNACK return codes -> (MQTT 5 reason code, text), as paho 2 reports them.
_CONNACK_V311 = {1: (0x84, "Unsupported protocol version"), 2: (0x85, "Client identifier not valid"),
                 3: (0x88, "Server unavailable"), 4: (0x86, "Bad user name or password"), 5: (0x87, "Not authorized")}
_CREDENTIAL_CODES = frozenset({0x86, 0x87, 0x8A, 0x8C})  # bad login, not authorized, banned, bad auth method
_MQTT_ERR_NO_CONN, _MQTT_ERR_QUEUE_SIZE = 4, 15  # paho.mqtt.enums.MQTTErrorCode values


def connack_refusal(reason: Any) -> ConnectionRefused | None:
    """None for an accepted CONNACK, else the refusal. Takes paho 2's `ReasonCode` (callback API v2) or a bare
    MQTT 3.1.1 return code (0..5), so every caller reads a refusal the same way."""
    if isinstance(reason, int):
        if reason == 0:
            return None
        code, text = _CONNACK_V311.get(reason, (0x80, f"unknown return code {reason}"))
        return ConnectionRefused(code, text)
    if not reason.is_failure:
        return None
    return ConnectionRefused(int(reason.value), str(reason))


def publish_error(rc: int, topic: str) -> MqttError | None:
    """The error for paho's return code from `publish()`; None when the message was queued."""
    if rc == 0:
        return None
    if rc == _MQTT_ERR_NO_CONN:
        return NotConnected(f"not connected: {topic} was not sent")
    import paho.mqtt.client as mqtt  # only here: its error texts

    return PublishFailed(f"publishing {topic} failed: {mqtt.error_string(rc)}")


def wait_published(info: Any, topic: str, timeout: float | None) -> None:
    """Raise the typed error for a paho `MQTTMessageInfo` that was refused or, waiting up to `timeout` seconds
    (None: do not wait), was not acknowledged."""
    error = publish_error(info.rc, topic)
    if error is not None:
        raise error
    if timeout is None:
        return
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError) as exc:  # paho: dropped (connection lost) or not queued
        raise PublishFailed(f"publishing {topic} failed: {exc}") from None
    if not info.is_published():
        raise PublishTimeout(f"the broker did not acknowledge {topic} within {timeout}s")


# ------------------------------------------------------------------------------------------------ broker URL
def _host_problem(host: str) -> str | None:
    if not host:
        return "has no host"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"has an invalid IPv6 address {host!r}"
        return None
    return None if _HOSTNAME.fullmatch(host) else f"has an invalid host name {host!r}"


def _port_problem(port: object) -> str | None:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return None
    return f"has port {port} out of range (1..65535)"


def _bad(url: str, problem: str) -> BrokerUrlError:
    return BrokerUrlError(f"broker URL {url!r} {problem}; it must look like {_FORM}")


@dataclass(frozen=True)
class BrokerUrl:
    """Where a broker listens: `mqtt://HOST:PORT` (plain) or `mqtts://HOST:PORT` (TLS). Parsed once with `parse`,
    then passed around whole, so no caller splits the string again. `host` is bare (an IPv6 address without
    brackets, as sockets want it); `str()` gives the canonical URL back, with brackets and an explicit port."""

    tls: bool
    host: str
    port: int

    def __post_init__(self) -> None:
        problem = _host_problem(self.host) or _port_problem(self.port)
        if problem is not None:
            raise _bad(f"{self.scheme}://{self.host}:{self.port}", problem)

    @classmethod
    def parse(cls, url: str, *, require_port: bool = False) -> BrokerUrl:
        """Parse `url`; the port defaults to 1883 (mqtt) or 8883 (mqtts) unless `require_port`. No user info,
        path, query or fragment: credentials and certificates are settings of their own."""
        m = _URL.fullmatch(url) if isinstance(url, str) else None
        if m is None:
            raise _bad(url, "is not a URL")
        scheme, netloc, rest = m["scheme"].lower(), m["netloc"], m["rest"]
        if scheme not in ("mqtt", "mqtts"):
            raise _bad(url, f"has scheme {m['scheme']!r}")
        if rest not in ("", "/"):
            raise _bad(url, f"has a path, query or fragment {rest!r}")
        if "@" in netloc:
            raise _bad(url, "has user info (USER@): the login is a setting of its own")
        if netloc.startswith("["):
            bracketed = _BRACKETED.fullmatch(netloc)
            if bracketed is None:
                raise _bad(url, "has an unclosed [IPv6 address]")
            host, port_text = bracketed["host"], bracketed["port"]
            if ":" not in host:
                raise _bad(url, f"has {host!r} in brackets, which are for IPv6 addresses only")
        elif netloc.count(":") > 1:
            raise _bad(url, "has an IPv6 address without brackets (write mqtt://[::1]:1883)")
        else:
            host, colon, port_text = netloc.partition(":")
            port_text = port_text if colon else None
        problem = _host_problem(host)
        if problem is not None:
            raise _bad(url, problem)
        tls = scheme == "mqtts"
        if port_text is None:
            if require_port:
                raise _bad(url, "has no port")
            return cls(tls, host, DEFAULT_PORTS[tls])
        if not (port_text.isascii() and port_text.isdigit()):
            raise _bad(url, f"has port {port_text!r}, which is not a number")
        port = int(port_text)
        problem = _port_problem(port)
        if problem is not None:
            raise _bad(url, problem)
        return cls(tls, host, port)

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls else "mqtt"

    @property
    def netloc(self) -> str:
        """`HOST:PORT`, with an IPv6 host in brackets."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


# ------------------------------------------------------------------------------------------------ TLS
def tls_context(ca_file: Path | None = None, cert_file: Path | None = None,
                key_file: Path | None = None) -> ssl.SSLContext:
    """The client's TLS context for paho's `tls_set_context`: the broker is verified against `ca_file` (the
    system's CAs when None) including its host name, and `cert_file` + `key_file` log us in by certificate
    when given (a key without its certificate is a mistake, so it raises ValueError)."""
    if key_file is not None and cert_file is None:
        raise ValueError(f"client key {key_file} given without its certificate")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file is not None else None)
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    # Capped at TLS 1.2: paho against Mosquitto reported "EOF occurred in violation of protocol" with TLS 1.3
    # after a connect that looked good.
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# ------------------------------------------------------------------------------------------------ reconnecting
class ReconnectSchedule:
    """One paho client's place in its backoff (edgefleet.backoff: the same rule cameras reconnect by). Call `failed(client)` from `on_disconnect` and `on_connect_fail`
    (paho calls exactly one of them before each wait) and `connected()` after an accepted CONNACK.

    paho's own `reconnect_delay_set(min, max)` doubles a fixed delay, with no jitter. Setting min = max = our
    next delay also resets paho's doubling, so paho waits exactly that long before its next attempt while its
    network thread (`loop_start`) still does the reconnecting."""

    def __init__(self, backoff: Backoff, rng: random.Random | None = None) -> None:
        self.backoff = backoff
        self.rng = rng or random.Random()  # one per client: its own sequence, never the fleet's
        self.attempt = 0
        self.last_delay: float | None = None

    def connected(self) -> None:
        self.attempt, self.last_delay = 0, None

    def failed(self, client: Any) -> float:
        """Arm `client` (a paho Client) with the delay before its next attempt, and return it."""
        delay = self.backoff.delay(self.attempt + 1, self.rng)
        client.reconnect_delay_set(delay, delay)
        self.attempt += 1
        self.last_delay = delay
        return delay
