"""Start-up check of an external MQTT broker: the fleet's isolation rests on the broker's own access control, so
a server refuses to run on a broker that lets an anonymous client in, or lets one device reach another's topics.

1. An anonymous client (no login, no client certificate) must be refused: at the CONNACK, or in the TLS
   handshake of a broker that requires client certificates.
2. On a TLS broker, a probe device identity (a throw-away certificate from the fleet CA, held only in memory
   and a temporary directory) must neither read a message the server sends to another device's subtree nor
   get a message of its own into it. On a plain-MQTT broker there is no device identity to test with, so only
   the first check runs (and the log says so).

`insecure_broker` skips it, for development against a stock broker, with a warning on every start.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.mqtt import BrokerUrl, connack_refusal, tls_context
from fleet_server.mqtt_bridge import TlsFiles
from fleet_server.pki import CertificateAuthority, cert_pem
from fleet_server.settings import ServerSettings

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
DELIVERY_WAIT_S = 1.5  # how long a message that should not arrive is waited for
PROBE_PREFIX = "edgefleet-broker-check-"


class BrokerCheckFailed(RuntimeError):
    """The external broker does not isolate devices; the message says what was seen and what to do."""


class _Refused(Exception):
    """The broker did not let this client in (CONNACK refusal or a TLS handshake it failed)."""


def _advice(url: BrokerUrl) -> str:
    return (f"configure {url} with allow_anonymous false and a per-device ACL (pattern readwrite "
            "edgefleet/v1/%u/#), see docs, or pass --insecure-broker for development")


@contextmanager
def _session(url: BrokerUrl, *, context: ssl.SSLContext | None, username: str | None = None,
             password: str | None = None, client_id: str | None = None) -> Iterator[tuple[mqtt.Client, list]]:
    """A connected paho client and the list its received messages land in; _Refused if the broker says no,
    BrokerCheckFailed if it cannot be reached or its certificate is not trusted."""
    received: list[mqtt.MQTTMessage] = []
    answered, outcome = threading.Event(), {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or PROBE_PREFIX + secrets.token_hex(4),
                         protocol=mqtt.MQTTv311, clean_session=True)
    if username is not None:
        client.username_pw_set(username, password)
    if context is not None:
        client.tls_set_context(context)

    def on_connect(_c, _u, _f, reason, _p) -> None:
        outcome["refusal"] = connack_refusal(reason)
        answered.set()

    def on_disconnect(*_args) -> None:
        outcome.setdefault("refusal", _Refused("the broker closed the connection before answering"))
        answered.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    client.on_message = lambda _c, _u, msg: received.append(msg)
    try:
        client.connect(url.host, url.port, keepalive=30)
    except ssl.SSLCertVerificationError as exc:
        raise BrokerCheckFailed(f"the broker at {url} presents a certificate the fleet CA did not issue "
                                f"({exc.verify_message})") from None
    except ssl.SSLError as exc:  # a broker that requires a client certificate ends the handshake here
        raise _Refused(f"TLS handshake refused ({exc.reason})") from None
    except OSError as exc:
        raise BrokerCheckFailed(f"cannot check the broker at {url}: {exc}; start it first, or pass "
                                "--insecure-broker to start unchecked (development)") from None
    client.loop_start()
    try:
        if not answered.wait(TIMEOUT_S):
            raise BrokerCheckFailed(f"the broker at {url} did not answer a CONNECT within {TIMEOUT_S:g}s")
        if outcome["refusal"] is not None:
            raise _Refused(str(outcome["refusal"]))
        yield client, received
    finally:
        with suppress(Exception):
            client.disconnect()
        client.loop_stop()


def _subscribe(client: mqtt.Client, topic: str) -> bool:
    """Subscribe at QoS 1 and wait for the SUBACK; False when the broker refused the filter (0x80)."""
    done, granted = threading.Event(), []
    client.on_subscribe = lambda _c, _u, _mid, codes, _p: (granted.extend(codes), done.set())
    client.subscribe(topic, qos=1)
    return done.wait(TIMEOUT_S) and not any(code.is_failure for code in granted)


def check_anonymous(url: BrokerUrl, ca_file: Path | None) -> None:
    """Step 1: an anonymous client must not get in."""
    context = tls_context(ca_file) if url.tls else None
    try:
        with _session(url, context=context):
            pass
    except _Refused as refused:
        log.info("broker check: %s refuses anonymous clients (%s)", url, refused)
        return
    raise BrokerCheckFailed(f"the broker at {url} accepts anonymous clients: any device, or anyone who can "
                            f"reach it, could read and write every device's topics; {_advice(url)}")


def _delivered(sender: tuple[mqtt.Client, list], receiver: tuple[mqtt.Client, list], topic: str) -> bool:
    marker = secrets.token_hex(8).encode()
    if not _subscribe(receiver[0], topic):
        return False
    sender[0].publish(topic, marker, qos=1).wait_for_publish(TIMEOUT_S)
    threading.Event().wait(DELIVERY_WAIT_S)
    return any(msg.payload == marker for msg in receiver[1])


@contextmanager
def _probe_identity(ca: CertificateAuthority, device_id: str) -> Iterator[ssl.SSLContext]:
    """A client context logging in as `device_id` with a one-day certificate from the fleet CA; the files live
    only in a private temporary directory for the check."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.issue_server_cert(key, device_id, [], days=1)
    with tempfile.TemporaryDirectory(prefix="edgefleet-broker-check-") as tmp:
        cert_path, key_path = Path(tmp) / "probe.crt", Path(tmp) / "probe.key"
        cert_path.write_text(cert_pem(cert))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
        yield tls_context(ca.cert_path, cert_path, key_path)


def check_device_isolation(settings: ServerSettings, url: BrokerUrl, tls: TlsFiles | None,
                           ca: CertificateAuthority) -> None:
    """Step 2 (TLS brokers): a probe device must not read or write another device's subtree."""
    if not url.tls or tls is None:
        log.info("broker check: %s is plain MQTT, so no device identity to test its ACL with; only anonymous "
                 "access was checked", url)
        return
    probe, victim = PROBE_PREFIX + secrets.token_hex(4), PROBE_PREFIX + secrets.token_hex(4)
    topic = f"edgefleet/v1/{victim}/broker-check"
    server_login = {"username": settings.broker_username, "password": settings.broker_password}
    with _probe_identity(ca, probe) as probe_context:
        try:
            with _session(url, context=tls.context(), **server_login) as server, \
                    _session(url, context=probe_context, client_id=probe) as device:
                if _delivered(server, device, topic):
                    raise BrokerCheckFailed(f"on the broker at {url} a device read another device's topic "
                                            f"({topic}); {_advice(url)}")
                if _delivered(device, server, topic):
                    raise BrokerCheckFailed(f"on the broker at {url} a device wrote into another device's "
                                            f"topics ({topic}); {_advice(url)}")
        except _Refused as refused:
            raise BrokerCheckFailed(f"the broker check could not log in to {url} ({refused}): the server's "
                                    "or a device's fleet-CA certificate was refused") from None
    log.info("broker check: %s keeps devices to their own topics", url)


def check_external_broker(settings: ServerSettings, tls: TlsFiles | None, ca: CertificateAuthority) -> None:
    """Raise BrokerCheckFailed unless the external broker in `settings` isolates devices (see the module doc)."""
    url = BrokerUrl.parse(settings.broker)
    if settings.insecure_broker:
        log.warning("INSECURE: the external broker %s was not checked (--insecure-broker); if it lets anonymous "
                    "clients in, anyone who reaches it can read and command every device", url)
        return
    check_anonymous(url, tls.ca if tls is not None else None)
    check_device_isolation(settings, url, tls, ca)
