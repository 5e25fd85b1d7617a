"""`edgefleet server broker-config`: the production Mosquitto configuration, from the fleet's own CA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleet_server.cli import fail, server_app
from fleet_server.cli_output import console


@server_app.command("broker-config")
def server_broker_config(
    out: Annotated[Path, typer.Option("--out", help="directory to write mosquitto.conf, acl, certificates, crl.pem")],
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="server state dir (its CA signs)")] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="the TLS listener's port")] = 8883,
    bind: Annotated[str | None, typer.Option("--bind", help="listen on this address only (default: all)")] = None,
    host: Annotated[list[str] | None, typer.Option(
        "--host", help="a name or IP devices and the server reach the broker by (repeat; default localhost, "
                       "127.0.0.1): the broker's certificate names exactly these")] = None,
    mount_path: Annotated[Path | None, typer.Option(
        "--mount-path", help="where the broker will see --out (e.g. /mosquitto/config in a container)")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="the broker's persistence directory as it sees it (default MOUNT/data)")] = None,
    run_as: Annotated[str | None, typer.Option(
        "--run-as", help="user Mosquitto drops to when started as root (its default: mosquitto)")] = None,
) -> None:
    """Write a Mosquitto mTLS configuration for this fleet (DESIGN.md 3): devices log in by the certificate
    enrollment gave them and may use only their own topics; decommissioned devices are refused through crl.pem."""
    from fleet_server.broker_config import BrokerLayout, write_broker_config
    from fleet_server.pki import CertificateAuthority
    from fleet_server.settings import ServerSettings

    state = ServerSettings(**({"state_dir": state_dir} if state_dir else {})).state_dir
    ca = CertificateAuthority.load_or_create(state / "pki")
    layout = BrokerLayout(out=out, port=port, bind=bind, hosts=tuple(host or ("localhost", "127.0.0.1")),
                          mount_path=mount_path, data_dir=data_dir, run_as=run_as)
    try:
        written = write_broker_config(ca, layout)
    except OSError as exc:
        fail(f"cannot write the broker config into {out}: {exc}")
    for path in written:
        console.print(f"wrote {path}")
    seen = layout.seen_at
    console.print(f"run the server with --broker mqtts://{layout.hosts[0]}:{port} and, where it sees the broker's "
                  f"files, EDGEFLEET_BROKER_CRL_FILE={seen / 'crl.pem'} EDGEFLEET_BROKER_PID_FILE="
                  f"{seen / 'mosquitto.pid'}")
