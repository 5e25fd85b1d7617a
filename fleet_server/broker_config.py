"""`edgefleet server broker-config`: a Mosquitto configuration for production, made from the server's own CA.

Devices log in by the client certificate enrollment gave them (CN = device id), so the broker needs no user
list and no per-device change at enrollment: `use_identity_as_username` makes the CN the username, the ACL's
`pattern` lines confine each username to its own topics in the protocol's directions (DESIGN.md 2), and
`use_username_as_clientid` ties the client id to it, so one device's certificate cannot take over another's
session. Decommissioning revokes the certificate: the server rewrites `crl.pem` here and has the broker
reload it (fleet_server.broker_reload). TLS stays at 1.2: paho clients fail on Mosquitto's TLS 1.3 (see
docs/MEASUREMENTS.md).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from edgefleet.protocol import TOPIC_ROOT
from fleet_server.pki import SERVER_CN, CertificateAuthority, write_private

BROKER_CN = "edgefleet-broker"
CONF, ACL, CA, CERT, KEY, CRL, PID = ("mosquitto.conf", "acl", "ca.crt", "broker.crt", "broker.key", "crl.pem",
                                      "mosquitto.pid")

# Each direction of protocol v1, under the device's own prefix (`%u` = the certificate's CN = device id).
DEVICE_WRITES = ("status", "telemetry", "events", "twin/reported", "cmd/+/reply", "ota/get")
DEVICE_READS = ("twin/desired", "cmd/+", "ota/data/#")


@dataclass(frozen=True)
class BrokerLayout:
    """Where the broker listens, the names devices reach it by, and where it will see the written files."""

    out: Path
    port: int = 8883
    bind: str | None = None  # None: every address
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    mount_path: Path | None = None  # the `out` directory as the broker sees it (a container); default `out`
    data_dir: Path | None = None  # Mosquitto's persistence (retained twins, sessions); default MOUNT/data
    run_as: str | None = None  # Mosquitto started as root drops to this user (its default: `mosquitto`)

    @property
    def seen_at(self) -> Path:
        return self.mount_path or self.out.resolve()


def acl_text(server_identities: tuple[str, ...] = (SERVER_CN,)) -> str:
    """The ACL file: devices by pattern, exactly their own topics; the server's identity all of the fleet's."""
    lines = ["# edgefleet protocol v1 (DESIGN.md 2). A device's username is its certificate's CN, its device id.",
             "# Written by `edgefleet server broker-config`; rewrite it with that command, not by hand.", ""]
    lines += [f"pattern write {TOPIC_ROOT}/%u/{topic}" for topic in DEVICE_WRITES]
    lines += [f"pattern read {TOPIC_ROOT}/%u/{topic}" for topic in DEVICE_READS]
    for identity in server_identities:
        lines += ["", f"user {identity}", f"topic readwrite {TOPIC_ROOT}/#"]
    return "\n".join(lines) + "\n"


# One client, the server's bridge, reads the whole fleet's telemetry. Mosquitto's default queue (1,000 QoS 1
# messages per client) then drops messages the broker already acknowledged to a device as soon as the server falls
# a few seconds behind (seen in a 1,000-message burst on a loaded machine); a byte bound holds memory instead.
# A device's own queue stays small: its OTA window and a few commands.
QUEUE_LIMITS = ("max_queued_messages 100000", "max_queued_bytes 67108864")


def mosquitto_conf(layout: BrokerLayout) -> str:
    """mosquitto.conf for one mTLS listener; every path as the broker will see it."""
    at = layout.seen_at
    data = layout.data_dir or at / "data"
    lines = ["# Written by `edgefleet server broker-config` from the fleet's CA. Devices and the server log in",
             "# by client certificate; nobody logs in without one.",
             *([f"user {layout.run_as}"] if layout.run_as else []),
             "per_listener_settings false",
             "allow_anonymous false",
             f"acl_file {at / ACL}",
             f"pid_file {at / PID}",
             "persistence true",
             f"persistence_location {data}/",
             *QUEUE_LIMITS,
             "log_dest stdout",
             "",
             f"listener {layout.port}" + (f" {layout.bind}" if layout.bind else ""),
             f"cafile {at / CA}",
             f"certfile {at / CERT}",
             f"keyfile {at / KEY}",
             f"crlfile {at / CRL}",
             "require_certificate true",
             "use_identity_as_username true",
             "use_username_as_clientid true",
             "tls_version tlsv1.2"]
    return "\n".join(lines) + "\n"


def write_broker_config(ca: CertificateAuthority, layout: BrokerLayout) -> list[Path]:
    """Write the config, ACL, CA certificate, a new broker certificate and key, and the current CRL into
    `layout.out`; return the paths written. Rerunning it rotates the broker's key."""
    out = layout.out
    out.mkdir(parents=True, exist_ok=True)
    if layout.data_dir is None:
        (out / "data").mkdir(exist_ok=True)
    cert_pem, key_pem = ca.issue_server_certificate(BROKER_CN, list(layout.hosts))
    write_private(out / KEY, key_pem)
    (out / CERT).write_bytes(cert_pem)
    (out / CA).write_text(ca.cert_pem)
    if not ca.crl_path.exists():  # a server that never ran has revoked nothing yet
        ca.write_crl([])
    shutil.copyfile(ca.crl_path, out / CRL)
    (out / ACL).write_text(acl_text())
    (out / CONF).write_text(mosquitto_conf(layout))
    return [out / name for name in (CONF, ACL, CA, CERT, KEY, CRL)]
