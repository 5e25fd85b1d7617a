"""The agent's MQTT connection: identity, Last Will, subscriptions, reconnection and message decoding.

One paho client per agent (MQTT 3.1.1, persistent session, client id = device id). It owns nothing but the
connection: decoded messages go to a handler, malformed ones to a rejection callback, so a bad payload is
logged, counted and reported but can never take the agent down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet import protocol
from edgefleet.backoff import Backoff
from edgefleet.protocol.control import SIGNED_KINDS, ControlVerifier
from edgefleet.mqtt import (BrokerUrl, BrokerUrlError, MqttError, ReconnectSchedule,
                            connack_refusal, tls_context, wait_published)
from edge_agent.errors import ConfigError

log = logging.getLogger(__name__)

MessageHandler = Callable[[protocol.Topic, object], None]
RejectHandler = Callable[[str, str], None]  # (topic, reason)


@dataclass(frozen=True)
class BrokerSettings:
    """How to reach and authenticate to the broker. ``mqtts://`` means TLS 1.2 with the device certificate.
    ``reconnect``: each link draws its own jittered delays, so a fleet does not come back in lockstep."""

    broker: BrokerUrl
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = 30
    reconnect: Backoff = Backoff(initial_delay_s=1.0, max_delay_s=30.0, jitter=0.5)

    @classmethod
    def from_url(cls, url: str, **kwargs) -> "BrokerSettings":
        """Settings for the broker at ``url``; a bad URL is the agent's ConfigError (exit code 2)."""
        try:
            return cls(broker=BrokerUrl.parse(url), **kwargs)
        except BrokerUrlError as exc:
            raise ConfigError(str(exc)) from exc


class MqttLink:
    """A persistent, self-reconnecting device connection.

    ``on_connected`` hooks run (in paho's thread) after the online status is published and subscriptions are
    made; ``on_published(mid)`` fires on each PUBACK so the outbox can forget delivered messages.
    """

    def __init__(self, device_id: str, settings: BrokerSettings, *, agent_version: str,
                 on_message: MessageHandler, on_reject: RejectHandler,
                 control: ControlVerifier | None = None) -> None:
        self.device_id = protocol.validate_device_id(device_id)
        self._control = control or ControlVerifier(None)  # no pinned server key: every control message refused
        self.settings = settings
        self.agent_version = agent_version
        self._on_message = on_message
        self._on_reject = on_reject
        self.on_connected: list[Callable[[], None]] = []
        self.on_disconnected: list[Callable[[], None]] = []
        self.on_published: list[Callable[[int], None]] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker acknowledged our subscriptions: commands will arrive
        self.rejected = 0
        self.connects = 0
        self.sessions_lost = 0
        self.on_session_lost: list[Callable[[], None]] = []
        self.last_refusal: MqttError | None = None  # why the broker last refused us; None once connected
        self._reconnects = ReconnectSchedule(settings.reconnect)
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id, clean_session=False,
                             protocol=mqtt.MQTTv311)
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.broker.tls:
            client.tls_set_context(tls_context(s.ca_file, s.cert_file, s.key_file))
        offline = protocol.Status(state="offline", agent_version=self.agent_version, reason="connection lost")
        client.will_set(protocol.status_topic(self.device_id), offline.encode(), qos=1, retain=True)
        client.max_inflight_messages_set(50)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_publish = self._handle_publish
        client.on_subscribe = lambda *args: self.subscribed.set()
        return client

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho's loop retries with jittered backoff until it gets through."""
        broker = self.settings.broker
        self._client.connect_async(broker.host, broker.port, keepalive=self.settings.keepalive)
        self._client.loop_start()

    def stop(self, reason: str = "agent stopped", timeout: float = 3.0) -> None:
        """Say goodbye cleanly: a retained offline status, then disconnect (no Last Will on a clean exit)."""
        self._stopping = True
        if self.connected.is_set():
            offline = protocol.Status(state="offline", agent_version=self.agent_version, reason=reason)
            topic = protocol.status_topic(self.device_id)
            try:
                wait_published(self._client.publish(topic, offline.encode(), qos=1, retain=True), topic, timeout)
            except MqttError as exc:
                log.warning("offline status not confirmed: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
        self.subscribed.clear()

    def kill(self) -> None:
        """Drop the connection without a goodbye, as a crash or a pulled cable would (the Last Will fires)."""
        sock = self._client.socket()
        self._client.loop_stop()
        if sock is not None:
            sock.close()
        self.connected.clear()
        self.subscribed.clear()

    # publishing -------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    # paho callbacks (paho's thread) -------------------------------------------------------------
    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        refusal = connack_refusal(reason_code)
        if refusal is not None:
            self.last_refusal = refusal
            log.warning("broker refused %s: %s", self.device_id, refusal.reason)
            return
        self.last_refusal = None
        self._reconnects.connected()
        self.connects += 1
        if self.connects > 1 and not flags.session_present:
            # We always ask for a persistent session, so a reconnect without one means it was lost: another client
            # connected with this device's identity and a clean session (a takeover), or the broker lost its
            # state. Queued commands are gone; the subscriptions below renew what the session held.
            self.sessions_lost += 1
            log.warning("%s: the broker had no session for us on reconnect (taken over or lost); subscriptions "
                        "renewed", self.device_id)
            for hook in list(self.on_session_lost):
                self._safely(hook)
        online = protocol.Status(state="online", agent_version=self.agent_version)
        client.publish(protocol.status_topic(self.device_id), online.encode(), qos=1, retain=True)
        client.subscribe([(f, 1) for f in protocol.device_subscriptions(self.device_id)])
        self.connected.set()
        log.info("%s connected to %s", self.device_id, self.settings.broker)
        for hook in list(self.on_connected):
            self._safely(hook)

    def _handle_connect_fail(self, client, userdata) -> None:
        delay = self._reconnects.failed(client)
        log.debug("%s cannot reach %s; next attempt in %.1fs", self.device_id, self.settings.broker.netloc, delay)

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._reconnects.failed(client)
        was = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        if was:
            level = logging.INFO if getattr(self, "_stopping", False) else logging.WARNING
            log.log(level, "%s disconnected: %s", self.device_id, reason_code)
        for hook in list(self.on_disconnected):
            self._safely(hook)

    def _handle_publish(self, client, userdata, mid, reason_code, properties) -> None:
        for hook in list(self.on_published):
            self._safely(hook, mid)

    def _handle_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        try:
            parsed = protocol.parse_topic(topic)
            if parsed.device_id != self.device_id:
                raise protocol.ProtocolError(f"message for device {parsed.device_id!r} reached {self.device_id!r}")
            payload = message.payload
            if parsed.kind in SIGNED_KINDS:
                payload = self._control.open(parsed, topic, payload)
            decoded = protocol.decode_payload(parsed, payload)
        except protocol.ProtocolError as exc:
            self.rejected += 1
            log.warning("rejected message on %s: %s", topic, exc)
            self._safely(self._on_reject, topic, str(exc))
            return
        self._safely(self._on_message, parsed, decoded)

    def _safely(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a handler bug must not kill paho's network thread
            log.exception("handler %s failed", getattr(fn, "__qualname__", fn))
