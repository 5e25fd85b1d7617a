"""The embedded MQTT broker: amqtt in-process, devices log in with the username/password issued at enrollment.

`EmbeddedBroker` runs on the caller's event loop (the FastAPI lifespan); `BrokerThread` runs one on a
private loop in a background thread for synchronous callers (CLI, demo, tests).

What differs from a bare amqtt `Broker` and why:
- it binds 127.0.0.1 unless told otherwise (amqtt's default is 0.0.0.0) and reports the port it really bound
  (port 0 picks a free one);
- only our plug-ins are loaded: `DeviceAuthPlugin` and `DeviceTopicPlugin` (no anonymous plug-in, no $SYS);
- `GuardedBroker` checks a login before amqtt looks up, deletes or takes over a session (see guarded.py);
- `disconnect(client_id)` drops a connected client and its stored session (for decommissioning);
- refused logins are logged once, at INFO, by our plug-in; amqtt's per-connection chatter goes to DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from fleet_server.broker.auth import CredentialChecker
from fleet_server.broker.guarded import GuardedBroker
from fleet_server.broker.quiet import quieten_amqtt

log = logging.getLogger(__name__)

DEFAULT_PORT = 18830
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600  # an offline device's queued commands are dropped after a week
_AUTH = "fleet_server.broker.auth.DeviceAuthPlugin"
_TOPIC = "fleet_server.broker.auth.DeviceTopicPlugin"
_RETAINED = "fleet_server.broker.retained_store.RetainedStorePlugin"


class BrokerError(RuntimeError):
    """The embedded broker could not start (port taken, bad address) or was used in the wrong state."""


def broker_config(host: str, port: int, checker: CredentialChecker, persistence_path: Path | None,
                  session_expiry_s: int | None = None) -> dict[str, Any]:
    """The amqtt configuration: one TCP listener and our plug-ins only (the dataclass-`Config` style of 0.12)."""
    bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    plugins: dict[str, Any] = {_AUTH: {"checker": checker}, _TOPIC: {"checker": checker}}
    if persistence_path is not None:
        plugins[_RETAINED] = {"path": str(persistence_path)}
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{bind_host}:{port}", "max_connections": 0}},
        "plugins": plugins,
        "session_expiry_interval": session_expiry_s,
    }


class EmbeddedBroker:
    """An amqtt broker for the fleet. Create and start it inside a running event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, checker: CredentialChecker | None = None,
                 *, persistence_path: Path | None = None,
                 session_expiry_s: int | None = DEFAULT_SESSION_EXPIRY_S) -> None:
        if checker is None:
            raise BrokerError("the embedded broker needs a credential checker (it never allows anonymous logins)")
        self.host = host
        self._requested_port = port
        self._checker = checker
        self._persistence_path = persistence_path
        self._session_expiry_s = session_expiry_s
        self._broker: GuardedBroker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port really bound (differs from the requested one when that was 0)."""
        if self._port is None:
            raise BrokerError("the embedded broker is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def start(self) -> None:
        if self._broker is not None:
            raise BrokerError("the embedded broker is already started")
        quieten_amqtt()
        self._loop = asyncio.get_running_loop()
        config = broker_config(self.host, self._requested_port, self._checker, self._persistence_path,
                               self._session_expiry_s)
        broker = GuardedBroker(config, loop=self._loop)
        try:
            await broker.start()
        except Exception as exc:  # amqtt wraps OSError (port in use) in its own BrokerError
            raise BrokerError(f"cannot start the embedded broker on {self.host}:{self._requested_port}: "
                              f"{exc.__cause__ or exc}") from exc
        self._broker = broker
        server = broker._servers["default"].instance  # noqa: SLF001 - amqtt exposes no bound address
        self._port = int(server.sockets[0].getsockname()[1])
        log.info("embedded MQTT broker listening on %s", self.url)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is None:
            return
        try:
            await broker.shutdown()
        except Exception:  # noqa: BLE001 - stopping must not fail the caller's shutdown
            log.warning("embedded broker did not shut down cleanly", exc_info=True)
        log.info("embedded MQTT broker on port %s stopped", self._port)

    # ------------------------------------------------------------------------------------------ sessions
    def connected_clients(self) -> list[str]:
        """Client ids with a live connection now."""
        if self._broker is None:
            return []
        return [cid for cid, (session, _) in self._broker.sessions.items() if session.transitions.is_connected()]

    async def disconnect(self, client_id: str, *, forget: bool = True) -> bool:
        """Drop a client's connection now (its Last Will goes out, as for any lost connection) and, with
        `forget`, its stored session: subscriptions and queued messages. Returns whether it was known.
        After decommissioning, the credential checker refuses the device's next login."""
        broker = self._broker
        if broker is None:
            return False
        entry = broker.sessions.get(client_id)
        if entry is None:
            return False
        session, handler = entry
        if session.transitions.is_connected():
            await handler.handle_connection_closed()
            # let amqtt's client loop run its disconnect path (Last Will, handler stop, socket close)
            for _ in range(100):
                if not session.transitions.is_connected():
                    break
                await asyncio.sleep(0.01)
        if forget:
            await broker._delete_session(client_id)  # noqa: SLF001 - amqtt has no public way to drop a session
        log.info("disconnected MQTT client %s%s", client_id, " and dropped its session" if forget else "")
        return True

    def disconnect_threadsafe(self, client_id: str, *, forget: bool = True, timeout: float = 10.0) -> bool:
        """`disconnect` for code running outside the broker's loop (a sync API route, another thread)."""
        loop = self._loop
        if self._broker is None or loop is None:
            return False
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise BrokerError("disconnect_threadsafe called on the broker's own loop: await disconnect() instead")
        future = asyncio.run_coroutine_threadsafe(self.disconnect(client_id, forget=forget), loop)
        return future.result(timeout)
