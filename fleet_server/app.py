"""`create_app(settings)`: the FastAPI application. Its lifespan owns everything that runs: the database,
the embedded NATS broker (when `broker == "embedded"`) and its user sync, the MQTT bridge and the republisher.

Start-up, in order: open the Fleet (migrations, CA, keys, first admin key) -> start the embedded broker and
learn its port -> start the bridge, whose `on_connected` republishes desired twins on every (re)connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import anyio
from fastapi import FastAPI

from edgefleet.mqtt import BrokerUrl
from fleet_server.api import (alerts, apikeys, audit, ca, commands, dashboard, devices, docs, enroll, errors,
                              events, health, models, rollouts, tokens, twin, whoami)
from fleet_server.command_dispatch import CommandDispatcher
from fleet_server.api.body_limit import BodyLimit
from fleet_server.api.ratelimit import EnrollLimiter
from fleet_server.ingest import Ingest
from fleet_server.fleet import Fleet
from fleet_server.periodic import PeriodicThread
from fleet_server.rollout_scheduler import RolloutScheduler
from fleet_server.settings import ServerSettings
from fleet_server.tls_identity import broker_identity

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
NATS_DIR = "nats"  # the embedded broker's config, users, JetStream store (sessions, retained messages) and log
EMBEDDED_CONNECT_WAIT_S = 15.0
CRL_REFRESH_S = 24 * 3600.0
# Routes allowed a larger body than settings.max_body_bytes, by path prefix -> the setting that gives their limit.
LARGER_BODIES: dict[str, str] = {f"{API_PREFIX}/models": "max_model_bytes"}


def _start_broker(fleet: Fleet) -> None:
    """Start the embedded NATS broker with the inventory's logins (synchronous: run it in a thread)."""
    settings = fleet.settings
    if settings.embedded:
        from fleet_server.broker_users import BrokerUserSync
        from fleet_server.nats import NatsBroker

        tls = broker_identity(settings, fleet.ca) if settings.embedded_broker_uses_tls else None
        broker = NatsBroker(settings.state_dir / NATS_DIR, settings.embedded_broker_host,
                            settings.embedded_broker_port, server_password=fleet.server_broker_password, tls=tls)
        broker.set_devices(fleet.broker_logins())  # recorded; start() writes them before the process starts
        fleet.broker = broker.start()
        fleet.user_sync = BrokerUserSync(fleet.broker_logins, broker.set_devices)
        fleet.broker_url = broker.url
    else:
        from fleet_server.broker_check import check_external_broker

        check_external_broker(settings, fleet.bridge_tls(BrokerUrl.parse(settings.broker)), fleet.ca)
        fleet.broker_url = settings.broker
    fleet.public_broker_url = settings.public_broker_url or fleet.broker_url


async def _sweep_retained(fleet: Fleet) -> None:
    """Every `retained_sweep_s`, have the bridge renew its subscriptions so the broker re-offers retained messages
    and the ones devices may not keep are cleared (fleet_server.mqtt_limits); bounds what a device can leave."""
    while True:
        await asyncio.sleep(fleet.settings.retained_sweep_s)
        if fleet.bridge is not None:
            await anyio.to_thread.run_sync(fleet.bridge.sweep_retained)


async def _refresh_crl(fleet: Fleet) -> None:
    """Rewrite the CRL (and an external broker's copy) daily: it states a next update 30 days on, and a
    broker holding an expired CRL refuses every client."""
    while True:
        await asyncio.sleep(CRL_REFRESH_S)
        try:
            await anyio.to_thread.run_sync(fleet.refresh_crl)
        except Exception:  # noqa: BLE001 - tried again tomorrow; the old CRL is valid for weeks
            log.exception("rewriting the CRL failed")


class _Republisher:
    """Republishes the stored desired twins after each (re)connect of the bridge. The bridge calls it on paho's
    network thread, which must stay free: republishing waits for the publish lock and the database, and a publish
    that waited there for its PUBACK would wait forever, that thread being the one that reads it. So the work
    runs on one worker thread of its own; a reconnect during a republish queues one more behind it."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="republish-desired")

    def __call__(self) -> None:
        self._worker.submit(self._republish)

    def _republish(self) -> None:
        try:
            sent = self._fleet.republish_desired()
            log.info("bridge connected; republished %d desired twin(s)", sent)
        except Exception:  # noqa: BLE001 - try again at the next reconnect
            log.exception("republishing desired twins failed")

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)


def _make_bridge(fleet: Fleet, on_connected: _Republisher):  # noqa: ANN202 - MqttBridge, imported lazily
    from fleet_server.mqtt_bridge import MqttBridge

    url = BrokerUrl.parse(fleet.broker_url)
    username, password = fleet.bridge_credentials()
    tls = fleet.bridge_tls(url)
    ingest = Ingest(fleet.db, fleet.metrics, ota=fleet.make_ota_server(), commands=fleet.commands,
                    events=fleet.events, late_after_s=fleet.settings.telemetry_late_s)
    return MqttBridge(url, ingest, username=username, password=password,
                      client_id=f"edgefleet-server-{secrets.token_hex(4)}", tls=tls, on_connected=on_connected,
                      signer=fleet.control,
                      shared_telemetry=fleet.settings.shared_telemetry and not fleet.settings.embedded)


def _start_monitoring(fleet: Fleet) -> list[PeriodicThread]:
    """The telemetry job (downsampling, retention) and the alert evaluator, each on its own thread."""
    return [PeriodicThread("telemetry-job", fleet.settings.telemetry_job_s, fleet.telemetry_job.run).start(),
            PeriodicThread("alert-evaluator", fleet.settings.alert_eval_s, fleet.alerts.tick).start()]


async def _shutdown(fleet: Fleet, republisher: _Republisher | None) -> None:
    if fleet.bridge is not None:
        await anyio.to_thread.run_sync(fleet.bridge.stop)
    if fleet.ota is not None:  # after the bridge: no new block requests arrive
        await anyio.to_thread.run_sync(fleet.ota.close)
    if fleet.commands is not None:  # after the bridge: no new replies arrive
        await anyio.to_thread.run_sync(fleet.commands.close)
    if republisher is not None:  # after the bridge: no new (re)connect can queue work
        await anyio.to_thread.run_sync(republisher.close)
    if fleet.user_sync is not None:
        await anyio.to_thread.run_sync(fleet.user_sync.close)
    if fleet.broker is not None:
        await anyio.to_thread.run_sync(fleet.broker.stop)
    if fleet.alerts is not None:
        await anyio.to_thread.run_sync(fleet.alerts.close)
    fleet.db.dispose()


def create_app(settings: ServerSettings, *, start_mqtt: bool = True) -> FastAPI:
    """The server app. `start_mqtt=False` runs the HTTP API alone (tests of the API without a broker:
    twin changes are then stored and reported as not published, and no rollout scheduler, telemetry job or
    alert evaluator runs, so rollouts, aggregates and alerts move only when a test ticks them)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        fleet: Fleet | None = None
        republisher: _Republisher | None = None
        tasks: list[asyncio.Task] = []
        scheduler: RolloutScheduler | None = None
        periodic: list[PeriodicThread] = []
        try:
            fleet = await anyio.to_thread.run_sync(Fleet.open, settings)
            app.state.fleet = fleet
            fleet.commands = CommandDispatcher(fleet.db, fleet.publish_command)
            if start_mqtt:
                await anyio.to_thread.run_sync(_start_broker, fleet)
                republisher = _Republisher(fleet)
                fleet.bridge = _make_bridge(fleet, republisher)
                await anyio.to_thread.run_sync(fleet.bridge.start)
                if settings.embedded:  # our own broker: be connected before serving (an external one may be down)
                    await anyio.to_thread.run_sync(fleet.bridge.wait_connected, EMBEDDED_CONNECT_WAIT_S)
                tasks = [asyncio.create_task(_sweep_retained(fleet)), asyncio.create_task(_refresh_crl(fleet))]
                scheduler = RolloutScheduler(fleet.db, fleet.publish_desired, events=fleet.events).start()
                fleet.commands.start()
                periodic = _start_monitoring(fleet)
            else:
                fleet.public_broker_url = settings.public_broker_url or ""
        except BaseException as exc:
            app.state.startup_error = exc  # start_server_in_thread reports it
            if fleet is not None:
                await _shutdown(fleet, republisher)
            raise
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if scheduler is not None:
                await anyio.to_thread.run_sync(scheduler.stop)
            for thread in periodic:
                await anyio.to_thread.run_sync(thread.stop)
            await _shutdown(fleet, republisher)

    app = FastAPI(title="edgefleet fleet server", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=docs.OPENAPI_URL,
                  description="Enrollment, device inventory, twin, model registry, rollouts, API keys and audit log of an "
                              "edgefleet fleet.")
    errors.install(app)
    _install_openapi(app)
    app.state.enroll_limiter = EnrollLimiter(settings.enroll_refusal_burst, settings.enroll_refusals_per_minute / 60)
    larger = {prefix: getattr(settings, setting) for prefix, setting in LARGER_BODIES.items()}
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, larger=larger,
                       on_refused=lambda scope: _count_refusal(scope, "body_too_large"))
    for module in (ca, enroll, tokens, devices, twin, commands, models, rollouts, alerts, apikeys, audit, whoami,
                   events):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(health.router)
    docs.install(app)  # /docs from local files: FastAPI's own page loads Swagger UI from a CDN
    dashboard.install(app)
    return app


def _install_openapi(app: FastAPI) -> None:
    framework_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = errors.drop_framework_validation_docs(framework_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _count_refusal(scope: dict, kind: str) -> None:
    fleet = getattr(scope["app"].state, "fleet", None) if "app" in scope else None
    if fleet is not None:  # None only while starting up
        fleet.metrics.refused(kind)
