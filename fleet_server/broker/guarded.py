"""amqtt's `Broker`, changed so that a login is checked BEFORE any session is looked up, deleted or taken over.

Why: in amqtt 0.12.1 `Broker._initialize_client_session` acts on the CONNECT packet before any
authentication plug-in runs (`_handle_client_session` authenticates later):

1. `clean_session=1` with an existing client id calls `_delete_session(client_id)`: a refused impostor that
   merely uses device B's client id silently removes all of B's subscriptions and queued messages.
2. `clean_session=0` with an existing client id copies the newcomer's username, password and Last Will onto
   B's stored session and returns that session; `_handle_client_session` then takes the live connection
   over (B is kicked) before the refusal CONNACK, and B's stored session now carries the impostor's will.

`GuardedBroker._initialize_client_session` reads the CONNECT, runs the authentication plug-ins on a fresh,
unattached `Session`, and on refusal answers CONNACK "not authorised" and closes the socket without touching
`self._sessions` or `self._subscriptions`. Only an accepted login reaches amqtt's own session lookup (copied
from 0.12.1, plus the `will_retain` flag it forgot to copy). The accepted session is marked so `_authenticate`
does not check it a second time.

A third defect showed up in the bridge tests: `_run_broadcast` iterates `self._subscriptions` while awaiting
the topic plug-ins for each subscriber (amqtt runs every plug-in call as a task, so the loop yields there);
a SUBSCRIBE or a session clean-up in between raises "dictionary changed size during iteration" and the
message is silently lost for every remaining subscriber. `_run_broadcast` here iterates over snapshots.

A fourth: at every CONNECT, amqtt sends the connecting client the retained messages of every filter that ANY
client holds, without asking the topic plug-ins, so every device got every other device's retained status and
twins. `_publish_retained_messages_for_subscription` here serves only the session's own filters, filtered.

Keep this in step with amqtt's source when upgrading it (the dependency is `amqtt>=0.12.1`); the tests in
tests/fleet_server/broker/test_impostors.py fail if the protection is lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, ListenerConfig
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from amqtt.utils import format_client_message, gen_client_id

_ACCEPTED_MARK = "_edgefleet_login_accepted"


class LoginRefused(MQTTError):
    """A CONNECT the authentication plug-ins refused; the broker's state was not touched."""


class GuardedBroker(Broker):
    """amqtt `Broker` whose authentication runs before session lookup. Construct inside a running loop."""

    async def _initialize_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        remote_address: str,
        remote_port: int,
    ) -> tuple[BrokerProtocolHandler, Session]:
        where = format_client_message(address=remote_address, port=remote_port)
        try:
            handler, client_session = await BrokerProtocolHandler.init_from_connect(reader, writer,
                                                                                   self.plugins_manager)
        except AMQTTError as exc:
            self.logger.info(f"[MQTT-3.1.0-1] {where}: Can't read first packet as CONNECT: {exc}")
            raise AMQTTError(exc) from exc
        except MQTTError as exc:
            self.logger.info(f"Invalid connection from {where}: {exc}")
            await writer.close()
            raise MQTTError(exc) from exc
        except NoDataError as exc:
            self.logger.info(f"No data from {where}: {exc}")
            raise AMQTTError(exc) from exc

        # --- edgefleet: authenticate the newcomer on its own, detached Session first ---------------------
        if not await Broker._authenticate(self, client_session, self.listeners_config["default"]):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise LoginRefused(f"login of client {client_session.client_id!r} from {where} refused")

        # --- amqtt 0.12.1 session lookup (plus will_retain, which 0.12.1 forgets to copy) -------------------
        if client_session.clean_session:
            if client_session.client_id is not None and client_session.client_id != "":
                await self._delete_session(client_session.client_id)
            else:
                client_session.client_id = gen_client_id()
            client_session.parent = 0
        elif client_session.client_id in self._sessions:
            existing_client_session, _ = self._sessions[client_session.client_id]
            existing_client_session.will_flag = client_session.will_flag
            existing_client_session.will_message = client_session.will_message
            existing_client_session.will_topic = client_session.will_topic
            existing_client_session.will_qos = client_session.will_qos
            existing_client_session.will_retain = client_session.will_retain
            existing_client_session.keep_alive = client_session.keep_alive
            existing_client_session.username = client_session.username
            existing_client_session.password = client_session.password
            client_session = existing_client_session
            client_session.parent = 1
        else:
            client_session.parent = 0

        timeout_disconnect_delay = self.config.get("timeout-disconnect-delay", 0)
        if client_session.keep_alive > 0 and isinstance(timeout_disconnect_delay, int):
            client_session.keep_alive += timeout_disconnect_delay
        setattr(client_session, _ACCEPTED_MARK, True)
        return handler, client_session

    async def _authenticate(self, session: Session, listener: ListenerConfig) -> bool:
        """Called by amqtt's `_handle_client_session`; the login was already accepted above."""
        if getattr(session, _ACCEPTED_MARK, False):
            setattr(session, _ACCEPTED_MARK, False)
            return True
        return await super()._authenticate(session, listener)

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        """amqtt 0.12.1's broadcast step, iterating over snapshots of the subscription table."""
        broadcast = await self._broadcast_queue.get()
        for k_filter, subscriptions in list(self._subscriptions.items()):
            if not self._matches(broadcast["topic"], k_filter):
                continue
            for target_session, sub_qos in list(subscriptions):
                qos = broadcast.get("qos", sub_qos)
                if not await self._topic_filtering(target_session, topic=broadcast["topic"], action=Action.RECEIVE):
                    continue
                # queue for a disconnected persistent (non-anonymous) session at QoS 1/2 [MQTT 3.1.2.4]
                if (target_session.transitions.state != "connected"
                        and not target_session.clean_session
                        and qos in (QOS_1, QOS_2)
                        and not target_session.is_anonymous):
                    await self._retain_broadcast_message(broadcast, qos, target_session)
                    continue
                if target_session.transitions.state != "connected":
                    continue
                handler = self._get_handler(target_session)
                if handler:
                    running_tasks.append(asyncio.ensure_future(
                        handler.mqtt_publish(broadcast["topic"], broadcast["data"], qos, retain=False)))

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                          session: Session) -> None:
        """Retained messages for one of THIS session's subscriptions, each passed through the topic plug-ins.

        amqtt 0.12.1 calls this at every CONNECT for every filter in `self._subscriptions`, i.e. every filter
        any client holds (the server's `edgefleet/v1/+/status` included), and never asks the topic plug-ins:
        each device that connected was sent every other device's retained status and twins. Here a filter the
        session does not hold sends nothing, and every retained message must pass RECEIVE filtering."""
        topic_filter, requested_qos = subscription
        held = [qos for holder, qos in list(self._subscriptions.get(topic_filter, ()))
                if holder.client_id == session.client_id]
        if not held:
            return
        qos = max(held[0], requested_qos)
        tasks = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                continue
            handler = self._get_handler(session)
            if handler:
                tasks.append(asyncio.ensure_future(
                    handler.mqtt_publish(retained.topic, retained.data, min(qos, retained.qos or qos), retain=True)))
        if tasks:
            await asyncio.wait(tasks)
