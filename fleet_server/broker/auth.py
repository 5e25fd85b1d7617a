"""Who may log in to the embedded broker, and which topics each identity may use.

Two amqtt plug-ins share one `CredentialChecker`:

- `DeviceAuthPlugin`: username + password through the checker; anonymous logins are refused; a device's
  client id must equal its username (Mosquitto's `use_username_as_clientid`), so no device can take over
  another's session. The server identity may use any client id.
- `DeviceTopicPlugin`: the server identity may use everything under `edgefleet/v1/`; a device only its own
  `edgefleet/v1/{username}/` subtree. Subscription filters are judged as filters (a device's
  `edgefleet/v1/+/telemetry` is refused, not matched against one topic), and `$share/` filters are refused
  for everyone because amqtt grants them but never delivers to them (the server's bridge then falls back to
  a plain subscription).

The checker is synchronous (it may query a database), so the plug-in calls it in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from edgefleet.protocol import TOPIC_ROOT, ProtocolError, device_prefix

log = logging.getLogger(__name__)

SERVER_SCOPE = TOPIC_ROOT + "/"


@runtime_checkable
class CredentialChecker(Protocol):
    """Decides logins. `check` may block (a database lookup); it must return False, not raise, on refusal."""

    def check(self, username: str, password: str) -> bool: ...

    def is_server(self, username: str) -> bool: ...


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return value if isinstance(value, str) else ""


def refusal_reason(checker: CredentialChecker, client_id: str | None, username: Any, password: Any,
                   will_topic: str | None = None) -> str | None:
    """Why a login is refused (None when it is accepted). Blocking: run it in a thread.

    The Last Will's topic is checked here because amqtt publishes a will without asking the topic plug-in:
    otherwise a device could leave a forged retained message on another device's topic (Mosquitto also
    refuses such a CONNECT)."""
    user, secret = _text(username), _text(password)
    if not user or not secret:
        return "anonymous login (no username or password)"
    try:
        if not checker.check(user, secret):
            return f"bad credentials for {user!r} (unknown, revoked or wrong password)"
        if not checker.is_server(user) and client_id != user:
            return f"client id {client_id!r} is not the username {user!r}"
        if will_topic is not None and not allowed(checker, user, _text(will_topic), Action.PUBLISH):
            return f"Last Will topic {will_topic!r} is outside what {user!r} may publish"
    except Exception:  # noqa: BLE001 - a failing checker refuses the login, never crashes the broker
        log.exception("credential check for %r failed", user)
        return "credential check failed"
    return None


class DeviceAuthPlugin(BaseAuthPlugin):
    """amqtt authentication plug-in backed by a `CredentialChecker` (passed in through `Config.checker`)."""

    @dataclass
    class Config:
        checker: Any = None

    async def authenticate(self, *, session: Session) -> bool | None:
        checker = self.config.checker
        if checker is None:
            log.error("DeviceAuthPlugin has no credential checker: refusing %s", session.client_id)
            return False
        will = session.will_topic if session.will_flag else None
        reason = await asyncio.to_thread(refusal_reason, checker, session.client_id, session.username,
                                         session.password, will)
        if reason is not None:
            log.info("refused MQTT login of client %r: %s", session.client_id, reason)
            return False
        return True


def allowed(checker: CredentialChecker, username: str | None, topic: str, action: Action) -> bool:
    """The topic rule. `topic` is a topic for publish/receive and a filter for subscribe."""
    if not username or not topic or topic.startswith("$"):
        return False
    if checker.is_server(username):
        scope = SERVER_SCOPE
    else:
        try:
            scope = device_prefix(username)
        except ProtocolError:
            return False
    if not topic.startswith(scope) or len(topic) == len(scope):
        return False
    if action is not Action.SUBSCRIBE and ("+" in topic or "#" in topic):
        return False
    return True


class DeviceTopicPlugin(BaseTopicPlugin):
    """amqtt topic plug-in: each identity stays inside its own subtree."""

    @dataclass
    class Config:
        checker: Any = None

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        checker = self.config.checker
        if checker is None or session is None or topic is None or action is None:
            return False
        username = _text(session.username)
        ok = allowed(checker, username, topic, action)
        if not ok and action is not Action.RECEIVE:
            log.info("refused %s of %r by %r", action.value, topic, username)
        return ok
