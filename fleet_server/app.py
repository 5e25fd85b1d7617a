"""`create_app(settings)`: the FastAPI application. Its lifespan owns everything that runs: the database,
the embedded broker (when `broker == "embedded"`), the MQTT bridge and the reconnect watcher.

Start-up, in order: open the Fleet (migrations, CA, keys, first admin key) -> start the embedded broker and
learn its port -> start the bridge -> watch the bridge and republish desired twins on every (re)connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI

from fleet_server.api import apikeys, audit, devices, enroll, errors, health, tokens, twin
from fleet_server.ingest import Ingest
from fleet_server.fleet import Fleet
from fleet_server.settings import ServerSettings

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
RECONNECT_POLL_S = 0.5
RETAINED_FILE = "broker-retained.sqlite"  # the embedded broker's retained messages survive restarts
EMBEDDED_CONNECT_WAIT_S = 15.0


async def _start_broker(fleet: Fleet) -> None:
    settings = fleet.settings
    if settings.embedded:
        from fleet_server.broker.embedded import EmbeddedBroker

        broker = EmbeddedBroker(settings.embedded_broker_host, settings.embedded_broker_port,
                                fleet.credential_checker(), persistence_path=settings.state_dir / RETAINED_FILE)
        await broker.start()
        fleet.broker = broker
        fleet.broker_url = f"mqtt://{settings.embedded_broker_host}:{broker.port}"
    else:
        fleet.broker_url = settings.broker
    fleet.public_broker_url = settings.public_broker_url or fleet.broker_url


def _make_bridge(fleet: Fleet):  # noqa: ANN202 - MqttBridge, imported lazily
    from fleet_server.mqtt_bridge import MqttBridge

    username, password = fleet.bridge_credentials()
    kwargs: dict = {}
    if fleet.broker_url.startswith("mqtts://"):
        from fleet_server.mqtt_bridge import TlsFiles

        cert, key = fleet.ca.server_identity()
        kwargs["tls"] = TlsFiles(ca=fleet.ca.cert_path, cert=cert, key=key)
    return MqttBridge(fleet.broker_url, Ingest(fleet.db, fleet.metrics), username=username, password=password,
                      client_id=f"edgefleet-server-{secrets.token_hex(4)}",
                      shared_telemetry=fleet.settings.shared_telemetry and not fleet.settings.embedded, **kwargs)


async def _watch_reconnects(fleet: Fleet) -> None:
    """Republish stored desired twins each time the bridge goes from disconnected to connected."""
    was_connected = False
    while True:
        connected = fleet.broker_connected()
        if connected and not was_connected:
            try:
                sent = await anyio.to_thread.run_sync(fleet.republish_desired)
                log.info("bridge connected; republished %d desired twin(s)", sent)
            except Exception:  # noqa: BLE001 - try again at the next reconnect
                log.exception("republishing desired twins failed")
        was_connected = connected
        await asyncio.sleep(RECONNECT_POLL_S)


async def _shutdown(fleet: Fleet, watcher: asyncio.Task | None) -> None:
    if watcher is not None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if fleet.bridge is not None:
        await anyio.to_thread.run_sync(fleet.bridge.stop)
    if fleet.broker is not None:
        await fleet.broker.stop()
    fleet.db.dispose()


def create_app(settings: ServerSettings, *, start_mqtt: bool = True) -> FastAPI:
    """The server app. `start_mqtt=False` runs the HTTP API alone (tests of the API without a broker:
    twin changes are then stored and reported as not published)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        fleet: Fleet | None = None
        watcher: asyncio.Task | None = None
        try:
            fleet = await anyio.to_thread.run_sync(Fleet.open, settings)
            app.state.fleet = fleet
            if start_mqtt:
                await _start_broker(fleet)
                fleet.bridge = _make_bridge(fleet)
                await anyio.to_thread.run_sync(fleet.bridge.start)
                if settings.embedded:  # our own broker: be connected before serving (an external one may be down)
                    await anyio.to_thread.run_sync(fleet.bridge.wait_connected, EMBEDDED_CONNECT_WAIT_S)
                watcher = asyncio.create_task(_watch_reconnects(fleet))
            else:
                fleet.public_broker_url = settings.public_broker_url or ""
        except BaseException as exc:
            app.state.startup_error = exc  # start_server_in_thread reports it
            if fleet is not None:
                await _shutdown(fleet, watcher)
            raise
        try:
            yield
        finally:
            await _shutdown(fleet, watcher)

    app = FastAPI(title="edgefleet fleet server", version="1", lifespan=lifespan, docs_url="/docs",
                  openapi_url="/openapi.json",
                  description="Enrollment, device inventory, twin, API keys and audit log of an edgefleet fleet.")
    errors.install(app)
    for module in (enroll, tokens, devices, twin, apikeys, audit):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(health.router)
    return app
