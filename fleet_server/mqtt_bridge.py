"""The server's MQTT client: receives what devices publish and sends them desired twins, commands and OTA blocks.

paho-mqtt 2.x (callback API v2), MQTT 3.1.1, one network thread (`loop_start`). paho reconnects by itself
with exponential backoff; the bridge re-subscribes in every `on_connect`, so a broker restart (which loses
clean sessions) is survived. `connected` is only ever set by an accepted CONNACK, never by a connect attempt.

Incoming messages are parsed with `edgefleet.protocol.decode_for_topic`; a malformed topic or payload is
logged with the reason, counted in `malformed_count` and dropped; a handler exception is logged and counted
in `handler_errors`. Neither stops the network thread. Empty payloads are cleared retained messages: ignored.

Shared subscriptions: the server reads telemetry through `$share/fleet/...` so replicas split it. Mosquitto
supports that; amqtt 0.12.1 does not (it grants the filter and then never delivers to it), so the embedded
broker's topic plug-in refuses `$share/` filters. When the broker refuses the shared filter the bridge logs it
and subscribes to the plain filter instead (and keeps doing so on later reconnects); `shared_telemetry=False`
skips the attempt. Every server replica of one fleet must use the same `share_group`; fleets (or test runs)
that share one broker must use different ones, or they take each other's telemetry.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet import protocol as p

log = logging.getLogger(__name__)


class BridgeError(RuntimeError):
    """A message was not handed to the broker: not connected, paho refused it, or (with a timeout) the broker
    did not acknowledge it in time. The caller keeps it and sends it again later (desired twins are republished
    at every reconnect). In the rare race with a connection loss, paho may still deliver a QoS 1 message after
    reconnecting, so receivers must tolerate a duplicate (commands carry a request id for that)."""


class BridgeHandler(Protocol):
    """What the bridge calls for each decoded message, on the MQTT network thread."""

    def on_status(self, device_id: str, status: p.Status) -> None: ...
    def on_reported(self, device_id: str, reported: p.TwinReported) -> None: ...
    def on_telemetry(self, device_id: str, telemetry: p.Telemetry) -> None: ...
    def on_event(self, device_id: str, event: p.Event) -> None: ...
    def on_command_reply(self, device_id: str, request_id: str, reply: p.CommandReply) -> None: ...
    def on_ota_get(self, device_id: str, request: p.OtaGet) -> None: ...


@dataclass(frozen=True)
class TlsFiles:
    """Client-certificate TLS: the CA that signed the broker, and our certificate and key (PEM files)."""

    ca: Path
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        """Capped at TLS 1.2: with 1.3, paho reported 'EOF occurred in violation of protocol' (FACTS.md)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx


def parse_url(url: str) -> tuple[bool, str, int]:
    """(tls, host, port) of `mqtt://HOST:PORT` or `mqtts://HOST:PORT`."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise BridgeError(f"broker URL {url!r} must look like mqtt://HOST:PORT or mqtts://HOST:PORT")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError as exc:
        raise BridgeError(f"broker URL {url!r}: {exc}") from None
    return parts.scheme == "mqtts", parts.hostname, port


class MqttBridge:
    def __init__(self, url: str, handler: BridgeHandler, *, username: str | None = None,
                 password: str | None = None, client_id: str = "edgefleet-server", tls: TlsFiles | None = None,
                 shared_telemetry: bool = True, share_group: str = p.SHARED_GROUP, keepalive: int = 30,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 30.0) -> None:
        use_tls, self.host, self.port = parse_url(url)
        self.url = url
        self._handler = handler
        self._keepalive = keepalive
        self._shared = shared_telemetry
        if not share_group or any(c in share_group for c in "/+#"):
            raise BridgeError(f"invalid share group {share_group!r}: one topic level without + or #")
        self._share_group = share_group
        self._ready = threading.Event()
        self._connected = False
        self._pending_subs: dict[int, list[str]] = {}
        self._last_refusal: str | None = None
        self.messages_in = 0
        self.malformed_count = 0
        self.handler_errors = 0
        self.ignored_count = 0
        self.recent_malformed: deque[tuple[str, str]] = deque(maxlen=20)  # (topic, reason), for operators

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=True)
        if username is not None:
            client.username_pw_set(username, password)
        if use_tls or tls is not None:
            client.tls_set_context(tls.context() if tls is not None else _default_tls())
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type] - floats work
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._started = False

    # ------------------------------------------------------------------------------------- lifecycle
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str | None:
        """Why the last connect failed (unreachable, or the broker refused the login); None once connected."""
        return self._last_refusal

    @property
    def shared_telemetry(self) -> bool:
        """Whether telemetry is (still) read through a shared subscription."""
        return self._shared

    def start(self) -> None:
        """Connect in the background and keep reconnecting; returns at once (see `wait_connected`)."""
        if self._started:
            return
        self._started = True
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self._client.loop_start()
        log.info("MQTT bridge connecting to %s", self.url)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._ready.clear()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """True once connected AND subscribed (so nothing published afterwards is missed)."""
        return self._ready.wait(timeout)

    # ------------------------------------------------------------------------------------- publishing
    def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False,
                 timeout: float | None = None) -> mqtt.MQTTMessageInfo:
        if not self._connected:
            raise BridgeError(f"not connected to {self.url}: {topic} was not sent")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BridgeError(f"publishing {topic} failed: {mqtt.error_string(info.rc)}")
        if timeout is not None:
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:  # paho: the message was dropped (connection lost)
                raise BridgeError(f"publishing {topic} failed: {exc}") from None
            if not info.is_published():
                raise BridgeError(f"the broker did not acknowledge {topic} within {timeout}s")
        return info

    def publish_desired(self, device_id: str, desired: p.TwinDesired, *,
                        timeout: float | None = None) -> mqtt.MQTTMessageInfo:
        """Retained, QoS 1: a device that connects later still gets its latest desired state."""
        return self._publish(p.twin_desired_topic(device_id), desired.encode(), qos=1, retain=True, timeout=timeout)

    def clear_device(self, device_id: str, *, timeout: float | None = None) -> None:
        """Remove a decommissioned device's retained desired twin, status and reported twin from the broker."""
        for topic in (p.twin_desired_topic(device_id), p.status_topic(device_id), p.twin_reported_topic(device_id)):
            self._publish(topic, b"", qos=1, retain=True, timeout=timeout)

    def publish_command(self, device_id: str, request_id: str, command: p.Command, *,
                        timeout: float | None = None) -> mqtt.MQTTMessageInfo:
        return self._publish(p.cmd_topic(device_id, request_id), command.encode(), qos=1, timeout=timeout)

    def publish_ota_block(self, device_id: str, sha256: str, offset: int, data: bytes, *,
                          timeout: float | None = None) -> mqtt.MQTTMessageInfo:
        return self._publish(p.ota_data_topic(device_id, sha256, offset), bytes(data), qos=1, timeout=timeout)

    # ------------------------------------------------------------------------------------- callbacks
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._connected = False
            text = str(reason)
            if text != self._last_refusal:  # once per cause, not at every retry
                log.warning("MQTT broker %s refused the bridge: %s (retrying)", self.url, text)
                self._last_refusal = text
            return
        self._last_refusal = None
        self._connected = True
        self._subscribe(client, self.subscriptions())
        log.info("MQTT bridge connected to %s", self.url)

    def subscriptions(self) -> list[str]:
        """The filters subscribed at each connect (the shared one in this bridge's share group)."""
        default = f"$share/{p.SHARED_GROUP}/"
        return [f"$share/{self._share_group}/" + f[len(default):] if f.startswith(default) else f
                for f in p.server_subscriptions(shared=self._shared)]

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        text = f"cannot reach {self.host}:{self.port}"
        if text != self._last_refusal:
            log.warning("MQTT bridge %s (retrying with backoff)", text)
            self._last_refusal = text

    def _subscribe(self, client: mqtt.Client, filters: list[str]) -> None:
        result, mid = client.subscribe([(f, 1) for f in filters])
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._pending_subs[mid] = filters
        else:
            log.warning("subscribing to %s failed: %s", filters, mqtt.error_string(result))

    def _on_subscribe(self, client: mqtt.Client, _userdata: Any, mid: int, codes: list[Any], _props: Any) -> None:
        filters = self._pending_subs.pop(mid, [])
        retry: list[str] = []
        for filter_, code in zip(filters, codes):
            if not code.is_failure:
                continue
            if filter_.startswith("$share/"):
                plain = filter_.split("/", 2)[2]
                log.warning("broker %s refused shared subscription %s; using %s (no load sharing between "
                            "server replicas)", self.url, filter_, plain)
                self._shared = False
                retry.append(plain)
            else:
                log.error("broker %s refused subscription %s: %s", self.url, filter_, code)
        if retry:
            self._subscribe(client, retry)
        elif not self._pending_subs:
            self._ready.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        was = self._connected
        self._connected = False
        self._ready.clear()
        self._pending_subs.clear()
        if was:
            log.warning("MQTT bridge lost %s: %s (reconnecting)", self.url, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages_in += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._malformed(repr(message._topic), "topic is not UTF-8")  # noqa: SLF001 - raw bytes for the log
            return
        if not message.payload:
            return  # a cleared retained message
        try:
            parsed, payload = p.decode_for_topic(topic, message.payload)
        except p.ProtocolError as exc:
            self._malformed(topic, str(exc))
            return
        try:
            self._dispatch(parsed, payload)
        except p.ProtocolError as exc:
            self._malformed(topic, str(exc))
        except Exception:  # noqa: BLE001 - a handler bug must not kill the network thread
            self.handler_errors += 1
            log.exception("handling %s failed", topic)

    def _malformed(self, topic: str, reason: str) -> None:
        self.malformed_count += 1
        self.recent_malformed.append((topic, reason))
        log.warning("dropped malformed MQTT message on %s: %s", topic, reason)

    def _dispatch(self, topic: p.Topic, payload: Any) -> None:
        h, device = self._handler, topic.device_id
        kind = topic.kind
        if kind is p.TopicKind.STATUS:
            h.on_status(device, payload)
        elif kind is p.TopicKind.TWIN_REPORTED:
            h.on_reported(device, payload)
        elif kind is p.TopicKind.TELEMETRY:
            if payload.device_id != device:
                raise p.ProtocolError(f"telemetry names device {payload.device_id!r} but came from {device!r}")
            h.on_telemetry(device, payload)
        elif kind is p.TopicKind.EVENTS:
            h.on_event(device, payload)
        elif kind is p.TopicKind.CMD_REPLY:
            h.on_command_reply(device, topic.request_id or "", payload)
        elif kind is p.TopicKind.OTA_GET:
            h.on_ota_get(device, payload)
        else:  # server -> device topics: not subscribed to, so only a misbehaving broker sends them
            self.ignored_count += 1
            log.debug("ignored %s message for %s", kind.value, device)


def _default_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx
