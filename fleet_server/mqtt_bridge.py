"""The server's MQTT client: receives what devices publish and sends them desired twins, commands and OTA blocks.

paho-mqtt 2.x (callback API v2), MQTT 3.1.1, one network thread (`loop_start`). paho reconnects by itself,
waiting the jittered delays of `edgefleet.backoff.Backoff`; the bridge re-subscribes in every `on_connect`,
so a broker restart (which loses clean sessions) is survived. `connected` is only ever set by an accepted CONNACK,
never by a connect attempt. `on_connected` is called (on the network thread) once the subscriptions of each
connection are acknowledged: the app republishes desired twins from it.

Incoming messages first pass the limits of `fleet_server.mqtt_limits` (a per-device rate, the retain flag per
topic: a stray retained message is cleared), then are parsed with `edgefleet.protocol.decode_for_topic`. What
is refused is counted in `refused` by reason (malformed, rate_limited, retained) and dropped, with log lines
rate-limited per reason and topic; a handler exception is logged and counted in `handler_errors`. None stops
the network thread. Empty payloads are cleared retained messages: ignored.

Shared subscriptions: the server reads telemetry through `$share/fleet/...` so replicas split it. Mosquitto
supports that; NATS's MQTT side does not, and the embedded broker refuses the filter (the server's permissions
do not cover `$share`: granted, it would be accepted and never deliver). When the broker refuses the shared filter the bridge logs it
and subscribes to the plain filter instead (and keeps doing so on later reconnects); `shared_telemetry=False`
skips the attempt. Every server replica of one fleet must use the same `share_group`; fleets (or test runs)
that share one broker must use different ones, or they take each other's telemetry.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet import protocol as p
from edgefleet.backoff import Backoff
from edgefleet.mqtt import (BrokerUrl, MqttError, NotConnected, ReconnectSchedule, connack_refusal,
                            tls_context, wait_published)
from edgefleet.log_limits import ThrottledLog
from edgefleet.protocol.control import ControlSigner
from fleet_server.errors import BridgeError
from fleet_server.mqtt_limits import DeviceRateLimiter, retain_allowed

__all__ = ["BridgeError", "BridgeHandler", "MqttBridge", "TlsFiles"]
log = logging.getLogger(__name__)


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
        """The shared client context (`edgefleet.mqtt.tls_context`, capped at TLS 1.2) with these files."""
        return tls_context(self.ca, self.cert, self.key)


def _broker_url(url: str | BrokerUrl) -> BrokerUrl:
    if isinstance(url, BrokerUrl):
        return url
    try:
        return BrokerUrl.parse(url)
    except MqttError as exc:
        raise BridgeError(str(exc)) from exc


class MqttBridge:
    def __init__(self, url: str | BrokerUrl, handler: BridgeHandler, *, username: str | None = None,
                 password: str | None = None, client_id: str = "edgefleet-server", tls: TlsFiles | None = None,
                 shared_telemetry: bool = True, share_group: str = p.SHARED_GROUP, keepalive: int = 30,
                 reconnect: Backoff | None = None, on_connected: Callable[[], None] | None = None,
                 limiter: DeviceRateLimiter | None = None, signer: ControlSigner | None = None) -> None:
        self.broker = _broker_url(url)
        # Without the fleet's key (a bridge in a test or a bench) control messages are still sealed, with a key
        # of this bridge's own, so nothing the server sends a device ever goes out unsigned.
        self.signer = signer or ControlSigner(Ed25519PrivateKey.generate())
        self.url = str(self.broker)
        self.host, self.port = self.broker.host, self.broker.port
        self.on_connected = on_connected
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
        self.refused: Counter[str] = Counter()  # dropped messages by reason: malformed, rate_limited, retained
        self._limiter = limiter or DeviceRateLimiter()
        self._log = ThrottledLog(log)
        self.handler_errors = 0
        self.ignored_count = 0
        self.recent_malformed: deque[tuple[str, str]] = deque(maxlen=20)  # (topic, reason), for operators

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=True)
        if username is not None:
            client.username_pw_set(username, password)
        if self.broker.tls or tls is not None:
            client.tls_set_context(tls.context() if tls is not None else tls_context())
        self._reconnects = ReconnectSchedule(reconnect or Backoff(initial_delay_s=0.5, max_delay_s=30.0, jitter=0.5))
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
        try:
            if not self._connected:
                raise NotConnected(f"not connected to {self.url}: {topic} was not sent")
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            wait_published(info, topic, timeout)
        except MqttError as exc:
            raise BridgeError(str(exc)) from exc
        return info

    def publish_desired(self, device_id: str, desired: p.TwinDesired, *,
                        timeout: float | None = None) -> mqtt.MQTTMessageInfo:
        """Retained, QoS 1: a device that connects later still gets its latest desired state."""
        topic = p.twin_desired_topic(device_id)
        return self._publish(topic, self.signer.seal(topic, desired.encode()), qos=1, retain=True, timeout=timeout)

    def sweep_retained(self) -> bool:
        """Subscribe again to what the bridge reads: the broker re-sends every retained message matching a renewed
        subscription (MQTT 3.1.1, 3.8.4), and those on topics devices may not retain are cleared as they come.
        Live publishes reach an established subscription without their retain flag, so only this finds them."""
        if not self._connected:
            return False
        self._subscribe(self._client, self.subscriptions())
        return True

    def clear_device(self, device_id: str, *, timeout: float | None = None) -> None:
        """Remove a decommissioned device's retained desired twin, status and reported twin from the broker."""
        for topic in (p.twin_desired_topic(device_id), p.status_topic(device_id), p.twin_reported_topic(device_id)):
            self._publish(topic, b"", qos=1, retain=True, timeout=timeout)

    def publish_command(self, device_id: str, request_id: str, command: p.Command, *,
                        timeout: float | None = None) -> mqtt.MQTTMessageInfo:
        topic = p.cmd_topic(device_id, request_id)
        return self._publish(topic, self.signer.seal(topic, command.encode()), qos=1, timeout=timeout)

    def publish_ota_block(self, device_id: str, sha256: str, offset: int, data: bytes, *,
                          timeout: float | None = None) -> mqtt.MQTTMessageInfo:
        return self._publish(p.ota_data_topic(device_id, sha256, offset), bytes(data), qos=1, timeout=timeout)

    # ------------------------------------------------------------------------------------- callbacks
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        refusal = connack_refusal(reason)
        if refusal is not None:
            self._connected = False
            if refusal.reason != self._last_refusal:  # once per cause, not at every retry
                log.warning("MQTT broker %s refused the bridge: %s (retrying)", self.url, refusal.reason)
                self._last_refusal = refusal.reason
            return
        self._reconnects.connected()
        self._last_refusal = None
        self._connected = True
        self._subscribe(client, self.subscriptions())
        log.info("MQTT bridge connected to %s", self.url)

    def subscriptions(self) -> list[str]:
        """The filters subscribed at each connect (the shared one in this bridge's share group)."""
        default = f"$share/{p.SHARED_GROUP}/"
        return [f"$share/{self._share_group}/" + f[len(default):] if f.startswith(default) else f
                for f in p.server_subscriptions(shared=self._shared)]

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        delay = self._reconnects.failed(client)
        text = f"cannot reach {self.broker.netloc}"
        if text != self._last_refusal:
            log.warning("MQTT bridge %s (retrying with backoff, next in %.1fs)", text, delay)
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
        elif not self._pending_subs and not self._ready.is_set():
            self._ready.set()
            self._notify_connected()

    def _notify_connected(self) -> None:
        if self.on_connected is None:
            return
        try:
            self.on_connected()
        except Exception:  # noqa: BLE001 - a callback bug must not kill the network thread
            log.exception("the bridge's on_connected callback failed")

    def _on_disconnect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._reconnects.failed(client)
        was = self._connected
        self._connected = False
        self._ready.clear()
        self._pending_subs.clear()
        if was:
            log.warning("MQTT bridge lost %s: %s (reconnecting)", self.url, reason)

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages_in += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._refuse("malformed", repr(message._topic), "topic is not UTF-8")  # noqa: SLF001 - raw bytes
            return
        if not message.payload:
            return  # a cleared retained message
        try:
            parsed = p.parse_topic(topic)
            if message.retain and not retain_allowed(parsed.kind):
                self._refuse("retained", topic, "devices may not retain this topic; cleared")
                client.publish(topic, b"", qos=1, retain=True)  # no wait: this is paho's network thread
                return
            if not self._limiter.allow(parsed.device_id):
                self._refuse("rate_limited", topic, f"over {self._limiter.rate:g} messages/s")
                return
            self._dispatch(parsed, p.decode_payload(parsed, message.payload))  # topic parsed above
        except p.ProtocolError as exc:
            self._refuse("malformed", topic, str(exc))
        except Exception:  # noqa: BLE001 - a handler bug must not kill the network thread
            self.handler_errors += 1
            self._log.exception("handling %s failed", topic, key=f"handler:{topic}")

    @property
    def malformed_count(self) -> int:
        return self.refused["malformed"]

    def _refuse(self, kind: str, topic: str, reason: str) -> None:
        """Count and (rate-limited) log a dropped message; keep the last few for operators."""
        self.refused[kind] += 1
        self.recent_malformed.append((topic, reason))
        self._log.warning("dropped MQTT message on %s: %s", topic, reason, key=f"{kind}:{topic.rsplit('/', 1)[0]}")

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
