"""The running server's parts in one object, built at start-up from `ServerSettings` and owned by the app's
lifespan (never a module global): database, fleet CA, signing key, broker identity, first admin key,
metrics, and (once started) the MQTT bridge and the embedded NATS broker with its user sync.

`Fleet.open` is the synchronous bootstrap (migrations, keys, files); `fleet_server.app` starts the broker
and bridge around it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefleet.mqtt import BrokerUrl
from edgefleet.protocol.control import ControlSigner
from fleet_server.alert_evaluator import AlertEvaluator
from fleet_server.alert_webhook import WebhookSender
from fleet_server.broker_reload import publish_crl
from fleet_server.broker_users import BrokerUserSync
from fleet_server.db import Database, Device
from fleet_server.device_metrics import DeviceCollector, FleetState, read_state
from fleet_server.errors import BridgeError
from fleet_server.events import EventHub
from fleet_server.nats.users import SERVER_USER
from fleet_server.metrics import FleetMetrics
from fleet_server.model_store import ModelStore
from fleet_server.ota import OtaServer
from fleet_server.pki import CertificateAuthority, write_private
from fleet_server.services import apikeys, devices
from fleet_server.services.enrollment import EnrollContext
from fleet_server.services.twin import desired_model_sha256, desired_of
from fleet_server.settings import ServerSettings
from fleet_server.signing_key import signing_public_pem
from fleet_server.telemetry_job import TelemetryJob, retention_of
from models.signing import load_or_create_private_key, public_key_pem

if TYPE_CHECKING:
    from fleet_server.mqtt_bridge import TlsFiles

log = logging.getLogger(__name__)

ADMIN_KEY_FILE = "admin-api-key"
PKI_DIR = "pki"  # the fleet CA, its CRL and the server's TLS identities
BROKER_PASSWORD_FILE = "broker-server-password"
OTA_PUBLISH_TIMEOUT_S = 30.0
COMMAND_PUBLISH_TIMEOUT_S = 5.0


def admin_key_path(state_dir: Path) -> Path:
    """Where the first admin key is kept (0600) so `make demo` and the local CLI can find it."""
    return state_dir / ADMIN_KEY_FILE


def _read_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    write_private(path, value.encode())
    return value


@dataclass
class Fleet:
    settings: ServerSettings
    db: Database
    ca: CertificateAuthority
    signing_public_key: str
    control: ControlSigner  # seals what the server sends devices; its public half is pinned at enrollment
    server_broker_password: str
    admin_key: str | None
    admin_key_created: bool
    metrics: FleetMetrics = field(default_factory=FleetMetrics)
    events: EventHub = field(default_factory=EventHub)  # what the dashboard's stream and in-process listeners see
    alerts: AlertEvaluator | None = None  # tick(now) judges the alert rules; the app runs it periodically
    telemetry_job: TelemetryJob | None = None  # run(now) downsamples and prunes telemetry
    bridge: Any = None  # fleet_server.mqtt_bridge.MqttBridge once started
    broker: Any = None  # fleet_server.nats.NatsBroker when embedded
    ota: OtaServer | None = None  # answers devices' block requests once the bridge is made
    commands: Any = None  # fleet_server.command_dispatch.CommandDispatcher, made by the app's lifespan
    user_sync: BrokerUserSync | None = None  # keeps the embedded broker's users in step with the inventory
    broker_url: str = ""  # where the server's bridge connects
    public_broker_url: str = ""  # what devices are told at enrollment
    _publish_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, settings: ServerSettings) -> "Fleet":
        """Create or load everything on disk and in the database. Safe to run on every start."""
        state = settings.state_dir
        state.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url())
        db.upgrade()
        ca = CertificateAuthority.load_or_create(state / PKI_DIR)
        ca.server_identity([settings.embedded_broker_host, "127.0.0.1", "localhost"])
        signing = signing_public_pem(settings)
        broker_password = _read_or_create_secret(state / BROKER_PASSWORD_FILE)
        with db.session() as session:
            first = apikeys.ensure_first_admin(session)
            revoked = devices.revoked_serials(session)
        key_file = admin_key_path(state)
        if first:
            write_private(key_file, (first + "\n").encode())
        admin_key = first or (key_file.read_text().strip() if key_file.exists() else None)
        control = ControlSigner(load_or_create_private_key(settings.control_key_path()))
        fleet = cls(settings=settings, db=db, ca=ca, signing_public_key=signing, control=control,
                    server_broker_password=broker_password, admin_key=admin_key, admin_key_created=bool(first))
        fleet.metrics.watch(fleet._devices_online, fleet._mqtt_refused, fleet.broker_connected)
        fleet.metrics.collect_from(DeviceCollector(fleet._fleet_state))
        fleet.telemetry_job = TelemetryJob(db, retention_of(settings))
        webhook = (WebhookSender(settings.alert_webhook_url, attempts=settings.alert_webhook_attempts,
                                 backoff_s=settings.alert_webhook_backoff_s, timeout_s=settings.alert_webhook_timeout_s)
                   if settings.alert_webhook_url else None)
        fleet.alerts = AlertEvaluator(db, fleet.events, webhook)
        fleet._write_crl(revoked)
        return fleet

    def _write_crl(self, revoked: list) -> None:
        """The CA's CRL, and the external broker's copy of it with a reload (fleet_server.broker_reload)."""
        crl = self.ca.write_crl(revoked)
        if self.settings.broker_crl_file is not None or self.settings.broker_pid_file is not None:
            publish_crl(crl, self.settings.broker_crl_file, self.settings.broker_pid_file)

    def refresh_crl(self) -> None:
        """Write the CRL again: it expires (next update in 30 days) and a broker then refuses every client."""
        with self._publish_lock, self.db.session() as session:
            self._write_crl(devices.revoked_serials(session))

    # -------------------------------------------------------------------------------- broker identity
    def broker_logins(self) -> list[tuple[str, str]]:
        with self.db.session() as session:
            return devices.broker_logins(session)

    def sync_broker_users(self, timeout: float = 30.0) -> None:
        """Make the inventory's logins live on the embedded broker (no-op with an external broker)."""
        if self.user_sync is not None and not self.user_sync.changed(timeout):
            log.warning("the embedded broker's users were not updated within %.0fs", timeout)

    def after_enroll(self, device_id: str) -> None:
        """Outside the transaction: the new device may log in to the embedded broker once this returns."""
        self.sync_broker_users()
        log.info("enrolled %s", device_id)

    def bridge_credentials(self) -> tuple[str | None, str | None]:
        if self.settings.embedded:
            return SERVER_USER, self.server_broker_password
        return self.settings.broker_username, self.settings.broker_password

    def bridge_tls(self, url: BrokerUrl) -> "TlsFiles | None":
        """The bridge's TLS files for `url` (None for plain MQTT): the fleet CA verifies the broker, and the
        server's own certificate logs it in where the broker asks for one (Mosquitto with mTLS)."""
        from fleet_server.mqtt_bridge import TlsFiles

        if not url.tls:
            return None
        cert, key = self.ca.server_identity()
        return TlsFiles(ca=self.ca.cert_path, cert=cert, key=key)

    def enroll_context(self) -> EnrollContext:
        return EnrollContext(ca=self.ca, broker_url=self.public_broker_url, signing_public_key=self.signing_public_key,
                             control_public_key=public_key_pem(self.control.public_key),
                             cert_days=self.settings.device_cert_days)

    def broker_connected(self) -> bool:
        return bool(self.bridge is not None and getattr(self.bridge, "connected", False))

    # -------------------------------------------------------------------------------- publishing
    # Every desired-twin publish and every clear happens under `_publish_lock` and reads the database inside
    # it, so the retained message always ends as the latest stored state: two racing patches, a reconnect
    # republish and a decommission cannot leave an older revision (or a cleared device's twin) behind.

    def _publish_current(self, device_id: str) -> bool:
        with self.db.session() as session:
            device = session.get(Device, device_id)
            desired = desired_of(device.desired) if device is not None and device.active else None
        if desired is None or not self.broker_connected():
            return False
        try:
            self.bridge.publish_desired(device_id, desired)
            return True
        except Exception:  # noqa: BLE001 - the change is stored; publishing is retried on reconnect
            log.warning("publishing desired twin of %s failed; will retry on reconnect", device_id, exc_info=True)
            return False

    def publish_desired(self, device_id: str) -> bool:
        """Send the device's stored desired state (retained); False when the broker is unreachable (it stays
        stored and goes out when the bridge reconnects: see `republish_desired`)."""
        with self._publish_lock:
            return self._publish_current(device_id)

    def republish_desired(self) -> int:
        """Publish every active device's stored desired state (retained). Run at each (re)connect, so a
        change made while the broker was away, or a broker that lost its retained store, catches up."""
        with self._publish_lock:
            with self.db.session() as session:
                ids = [d.id for d in devices.list_devices(session) if d.desired]
            return sum(self._publish_current(device_id) for device_id in ids)

    def after_decommission(self, device_id: str) -> None:
        """Outside the transaction: rewrite the CRL, remove the device's login from the embedded broker (which
        cuts its live connection) and clear its retained messages. API routes run this in a worker thread."""
        self.refresh_crl()  # under the publish lock, which also serialises CRL writers
        try:  # the embedded broker drops its live connection in the same reload that removes its login
            self.sync_broker_users()
        except Exception:  # noqa: BLE001 - its credentials are revoked in the database either way
            log.warning("removing %s from the embedded broker failed", device_id, exc_info=True)
        with self._publish_lock:
            if not self.broker_connected():
                return
            try:
                self.bridge.clear_device(device_id)  # status and twins, the topics a device may retain
                self.bridge.sweep_retained()  # anything else it left retained is re-offered and cleared
            except Exception:  # noqa: BLE001 - nothing a caller can do; the device cannot log in any more
                log.warning("clearing retained messages of %s failed", device_id, exc_info=True)

    # -------------------------------------------------------------------------------- model delivery
    def make_ota_server(self) -> OtaServer:
        """The OTA server over the model registry's store, publishing through the bridge (set later)."""
        self.ota = OtaServer(ModelStore.in_state_dir(self.settings.state_dir).path, self.ota_assigned,
                             self._publish_ota_block)
        return self.ota

    def ota_assigned(self, device_id: str, sha256: str) -> bool:
        """A device may fetch a package only while its stored desired twin names it (and it is active)."""
        with self.db.session() as session:
            device = session.get(Device, device_id)
            return device is not None and device.active and desired_model_sha256(device) == sha256

    def _publish_ota_block(self, device_id: str, sha256: str, offset: int, data: bytes) -> None:
        if self.bridge is None:
            raise RuntimeError("the MQTT bridge is not started")
        self.bridge.publish_ota_block(device_id, sha256, offset, data, timeout=OTA_PUBLISH_TIMEOUT_S)

    def publish_command(self, device_id: str, request_id: str, command: Any) -> None:
        """Hand a command to the broker (QoS 1) and wait for its PUBACK; BridgeError when it cannot be."""
        if self.bridge is None:
            raise BridgeError("the MQTT bridge is not running")
        self.bridge.publish_command(device_id, request_id, command, timeout=COMMAND_PUBLISH_TIMEOUT_S)

    # -------------------------------------------------------------------------------- metrics sources
    def _devices_online(self) -> int:
        with self.db.session() as session:
            return devices.count_online(session)

    def _fleet_state(self) -> FleetState:
        with self.db.session() as session:
            return read_state(session)

    def _mqtt_refused(self) -> dict[str, int]:
        refused = dict(self.bridge.refused) if self.bridge is not None else {}
        if self.ota is not None:
            refused.update({f"ota_{reason}": count for reason, count in self.ota.refusals().items()})
        return refused
