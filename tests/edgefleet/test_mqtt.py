"""The MQTT layer the server's bridge and the agent's link share: broker URLs, the client TLS context (real
certificates, real handshakes on loopback), the reason-code mapping (against paho's own objects) and the jittered
reconnect backoff (seeded, so the numbers are exact)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet.backoff import Backoff
from edgefleet.mqtt import (BrokerUrl, BrokerUrlError, ConnectionRefused, MqttError, NotConnected, PublishFailed,
                            PublishTimeout, ReconnectSchedule, connack_refusal, publish_error,
                            tls_context, wait_published)
from tests.services import free_port, wait_for


# --------------------------------------------------------------------------------------------- broker URLs
@pytest.mark.parametrize(("url", "tls", "host", "port", "canonical"), [
    ("mqtt://broker.local:1884", False, "broker.local", 1884, "mqtt://broker.local:1884"),
    ("mqtts://broker.local:8884", True, "broker.local", 8884, "mqtts://broker.local:8884"),
    ("mqtt://127.0.0.1", False, "127.0.0.1", 1883, "mqtt://127.0.0.1:1883"),
    ("mqtts://127.0.0.1", True, "127.0.0.1", 8883, "mqtts://127.0.0.1:8883"),
    ("mqtt://[::1]:1883", False, "::1", 1883, "mqtt://[::1]:1883"),
    ("mqtts://[2001:db8::7]", True, "2001:db8::7", 8883, "mqtts://[2001:db8::7]:8883"),
    ("MQTT://Broker:1/", False, "Broker", 1, "mqtt://Broker:1"),
    ("mqtt://b:65535", False, "b", 65535, "mqtt://b:65535"),
    ("mqtt://my_broker.example.com.:2", False, "my_broker.example.com.", 2, "mqtt://my_broker.example.com.:2"),
])
def test_good_urls_parse_once_into_tls_host_port_and_print_canonically(url: str, tls: bool, host: str, port: int,
                                                                       canonical: str) -> None:
    parsed = BrokerUrl.parse(url)
    assert (parsed.tls, parsed.host, parsed.port) == (tls, host, port)
    assert str(parsed) == canonical
    assert BrokerUrl.parse(str(parsed)) == parsed
    assert parsed.scheme == ("mqtts" if tls else "mqtt")


@pytest.mark.parametrize(("url", "why"), [
    ("tcp://host:1883", "has scheme 'tcp'"),
    ("http://x:1", "has scheme 'http'"),
    ("127.0.0.1:1883", "is not a URL"),
    ("embedded2", "is not a URL"),
    ("", "is not a URL"),
    (" mqtt://host:1883", "is not a URL"),
    ("mqtt://", "has no host"),
    ("mqtt://:1883", "has no host"),
    ("mqtt://host:99999", "port 99999 out of range"),
    ("mqtt://host:0", "port 0 out of range"),
    ("mqtt://host:", "is not a number"),
    ("mqtt://host:12ab", "is not a number"),
    ("mqtt://host:-1", "is not a number"),
    ("mqtt://host:1883\n", "is not a number"),
    ("mqtt://user:pw@host:1883", "user info"),
    ("mqtt://host:1883/topic", "path, query or fragment"),
    ("mqtt://host:1883?x=1", "path, query or fragment"),
    ("mqtt://host:1883#frag", "path, query or fragment"),
    ("mqtt://::1:1883", "without brackets"),
    ("mqtt://[::1", "unclosed"),
    ("mqtt://[127.0.0.1]:1883", "IPv6 addresses only"),
    ("mqtt://[::zz]:1883", "invalid IPv6 address"),
    ("mqtt://-host:1883", "invalid host name"),
    ("mqtt://ho st:1883", "invalid host name"),
])
def test_bad_urls_raise_one_typed_error_saying_why_and_the_expected_form(url: str, why: str) -> None:
    with pytest.raises(BrokerUrlError) as caught:
        BrokerUrl.parse(url)
    message = str(caught.value)
    assert why in message and repr(url) in message
    assert message.endswith("it must look like mqtt://HOST:PORT or mqtts://HOST:PORT")
    assert isinstance(caught.value, MqttError) and isinstance(caught.value, ValueError)


def test_the_port_can_be_required() -> None:
    assert BrokerUrl.parse("mqtt://host:1883", require_port=True).port == 1883
    with pytest.raises(BrokerUrlError, match="has no port"):
        BrokerUrl.parse("mqtt://host", require_port=True)


def test_a_url_built_from_parts_is_checked_too() -> None:
    assert str(BrokerUrl(tls=False, host="::1", port=18830)) == "mqtt://[::1]:18830"
    for host, port in (("", 1883), ("bad host", 1883), ("h", 0), ("h", 70000), ("h", True)):
        with pytest.raises(BrokerUrlError):
            BrokerUrl(tls=False, host=host, port=port)  # type: ignore[arg-type]


def test_importing_the_module_needs_no_extra() -> None:
    """`edgefleet` itself depends on neither paho nor the programs."""
    code = ("import sys, edgefleet.mqtt; "
            "print(','.join(m for m in ('paho', 'fleet_server', 'edge_agent') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------------------------------- TLS
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(folder: Path, stem: str, cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
           *, ca: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A real certificate + key (PEM files `stem`.crt / `stem`.key), self-signed when no issuer is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    signer_cert, signer_key = issuer or (None, key)
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(signer_cert.subject if signer_cert else _name(cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        loopback = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(loopback, critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (folder / f"{stem}.key").write_bytes(pem)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a broker certificate for 127.0.0.1 and a device certificate, all signed by the CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue(folder, "ca", "test fleet CA", None, ca=True)
    _issue(folder, "broker", "broker", ca)
    _issue(folder, "device", "cam-0001", ca)
    _issue(folder, "other", "other", None)  # not from the CA
    return folder


def test_the_context_verifies_the_broker_and_is_capped_at_tls_1_2(pki: Path) -> None:
    ctx = tls_context(pki / "ca.crt", pki / "device.crt", pki / "device.key")
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [dict(rdn[0] for rdn in c["subject"]) for c in ctx.get_ca_certs()] == [{"commonName": "test fleet CA"}]
    assert tls_context().maximum_version == ssl.TLSVersion.TLSv1_2  # system CAs, no client certificate


def test_a_key_that_is_not_the_certificates_or_has_none_is_refused(pki: Path) -> None:
    with pytest.raises(ssl.SSLError):
        tls_context(pki / "ca.crt", pki / "device.crt", pki / "other.key")
    with pytest.raises(ValueError, match="without its certificate"):
        tls_context(pki / "ca.crt", None, pki / "device.key")


def _handshake(pki: Path, client: ssl.SSLContext, *, minimum: ssl.TLSVersion) -> tuple[str, dict] | Exception:
    """One TLS handshake against a loopback server that requires a client certificate from the CA; the server's
    view (version, client certificate) or its error."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki / "broker.crt", pki / "broker.key")
    server.load_verify_locations(pki / "ca.crt")
    server.verify_mode = ssl.CERT_REQUIRED
    server.minimum_version = minimum
    result: list = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    result.append((tls.version(), tls.getpeercert()))
            except (ssl.SSLError, OSError) as exc:
                result.append(exc)
        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname()) as raw, \
                    client.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass
        except (ssl.SSLError, OSError):
            pass
        thread.join(30)
    return result[0]


def test_a_real_handshake_uses_tls_1_2_and_presents_the_device_certificate(pki: Path) -> None:
    client = tls_context(pki / "ca.crt", pki / "device.crt", pki / "device.key")
    version, peer = _handshake(pki, client, minimum=ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2"
    assert dict(rdn[0] for rdn in peer["subject"]) == {"commonName": "cam-0001"}
    assert isinstance(_handshake(pki, client, minimum=ssl.TLSVersion.TLSv1_3), ssl.SSLError)  # never offers 1.3


# --------------------------------------------------------------------------------------------- reason codes
@pytest.mark.parametrize(("code", "credentials"), [
    (0x80, False), (0x84, False), (0x85, False), (0x86, True), (0x87, True), (0x88, False), (0x89, False),
    (0x8A, True), (0x8C, True), (0x97, False),
])
def test_a_refused_connack_becomes_connection_refused_with_pahos_reason(code: int, credentials: bool) -> None:
    reason = ReasonCode(PacketTypes.CONNACK, identifier=code)
    refusal = connack_refusal(reason)
    assert isinstance(refusal, ConnectionRefused) and isinstance(refusal, MqttError)
    assert refusal.code == code and refusal.reason == str(reason) and str(reason) in str(refusal)
    assert refusal.credentials_refused is credentials


def test_an_accepted_connack_is_no_error() -> None:
    assert connack_refusal(ReasonCode(PacketTypes.CONNACK, identifier=0)) is None
    assert connack_refusal(0) is None


@pytest.mark.parametrize("rc", [1, 2, 3, 4, 5])
def test_mqtt_3_return_codes_map_as_paho_maps_them(rc: int) -> None:
    pahos = mqtt.convert_connack_rc_to_reason_code(mqtt.ConnackCode(rc))
    refusal = connack_refusal(rc)
    assert refusal is not None and (refusal.code, refusal.reason) == (pahos.value, str(pahos))
    assert connack_refusal(9).code == 0x80  # type: ignore[union-attr] - an unknown code is "unspecified"


def test_publish_return_codes_map_to_typed_errors() -> None:
    assert publish_error(mqtt.MQTT_ERR_SUCCESS, "t") is None
    assert isinstance(publish_error(mqtt.MQTT_ERR_NO_CONN, "t"), NotConnected)
    queue_full = publish_error(mqtt.MQTT_ERR_QUEUE_SIZE, "a/b")
    assert isinstance(queue_full, PublishFailed) and str(queue_full) == "publishing a/b failed: Message queue full."


def test_waiting_on_a_real_publish_raises_the_typed_error() -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="never-connected")
    with pytest.raises(NotConnected, match="a/b was not sent"):
        wait_published(client.publish("a/b", b"x", qos=1), "a/b", 1.0)
    unacknowledged = mqtt.MQTTMessageInfo(mid=1)  # queued, never acknowledged: no broker
    with pytest.raises(PublishTimeout, match="did not acknowledge a/b within 0.01s"):
        wait_published(unacknowledged, "a/b", 0.01)
    wait_published(unacknowledged, "a/b", None)  # not waiting: nothing to report


# --------------------------------------------------------------------------------------------- reconnecting
def _sequence(backoff: Backoff, seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [backoff.delay(attempt, rng) for attempt in range(1, n + 1)]


class _Armed:
    """Stands where a paho client would: records the delay a schedule arms it with."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def reconnect_delay_set(self, min_delay: float, max_delay: float) -> None:
        assert min_delay == max_delay
        self.delays.append(min_delay)


def test_two_clients_schedules_do_not_retry_in_lockstep() -> None:
    backoff = Backoff(initial_delay_s=1.0, max_delay_s=30.0, jitter=0.5)
    one, two = _Armed(), _Armed()
    first, second = ReconnectSchedule(backoff), ReconnectSchedule(backoff)  # as the clients make them
    for _ in range(8):
        first.failed(one), second.failed(two)
    assert all(a != b for a, b in zip(one.delays, two.delays))
    assert all(0.5 <= d <= 45.0 for d in one.delays + two.delays)


def test_a_real_paho_client_retries_on_the_schedules_delays_and_starts_over_when_connected() -> None:
    backoff = Backoff(initial_delay_s=0.01, max_delay_s=0.05, jitter=0.5)
    schedule = ReconnectSchedule(backoff, random.Random(7))
    armed: list[float] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="backoff-probe")
    client.on_connect_fail = lambda c, _userdata: armed.append(schedule.failed(c))
    client.connect_async("127.0.0.1", free_port())  # nothing listens there: every attempt fails
    client.loop_start()
    try:
        wait_for(lambda: len(armed) >= 5, what="five failed connects")
    finally:
        client.loop_stop()
    assert armed[:5] == _sequence(backoff, 7, 5)
    assert schedule.attempt == len(armed) and schedule.last_delay == armed[-1]
    schedule.connected()
    assert (schedule.attempt, schedule.last_delay) == (0, None)
