"""`edgefleet agent install-service`: the systemd unit that runs this device's agent, written, never started.

The unit runs the agent as a dedicated user with what it needs and no more: its state dir is the one
writable path (`ProtectSystem=strict`), cameras come through the `video` group, and no child can gain
privileges. With `--server`, the unit enrolls the device on its first start, reading the one-time token from
the systemd credential `edgefleet-enroll-token` (`/etc/credstore/edgefleet-enroll-token`, readable by root
only; systemd hands the service a private copy), and later starts need no token at all.
Enabling and starting it is left to the operator (`systemctl daemon-reload && systemctl enable --now ...`).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

UNIT_NAME = "edgefleet-agent.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_STATE_DIR = Path("/var/lib/edgefleet/agent")
DEFAULT_USER = "edgefleet"
TOKEN_CREDENTIAL = "edgefleet-enroll-token"  # also edge_agent.cli.enroll.TOKEN_CREDENTIAL (not imported: cheap help)
VAR_LIB = Path("/var/lib")


@dataclass(frozen=True)
class AgentUnit:
    executable: Path
    state_dir: Path = DEFAULT_STATE_DIR
    user: str = DEFAULT_USER
    server: str | None = None  # enroll on first start against this server


def _state_directory(state_dir: Path) -> str | None:
    """`StateDirectory=` for a dir under /var/lib: systemd creates it and gives it to the service user, so a
    device enrolled by hand as root still starts (its files change owner on the first start)."""
    try:
        return str(state_dir.relative_to(VAR_LIB))
    except ValueError:
        return None


def render_unit(unit: AgentUnit) -> str:
    """The unit file text."""
    exe, state = unit.executable, unit.state_dir
    service = [f"User={unit.user}", f"Group={unit.user}", "SupplementaryGroups=video",
               f"Environment=EDGEFLEET_STATE_DIR={state.parent}", "Environment=PYTHONUNBUFFERED=1"]
    if (relative := _state_directory(state)) is not None:
        service += [f"StateDirectory={relative}", "StateDirectoryMode=0700"]
    if unit.server:
        service += [f"LoadCredential={TOKEN_CREDENTIAL}",
                    # the fallback once the spent token's file is removed: a blank line reads as "no token"
                    # (systemd 252 refuses an empty value)
                    f"SetCredential={TOKEN_CREDENTIAL}:\\n",
                    f"ExecStartPre={exe} agent enroll --if-needed --server {unit.server} --state-dir {state}"]
    service += [f"ExecStart={exe} agent run --state-dir {state}",
                "Restart=on-failure", "RestartSec=5s",
                "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", f"ReadWritePaths={state}",
                "PrivateTmp=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
                "ProtectControlGroups=yes", "RestrictSUIDSGID=yes", "LockPersonality=yes", "UMask=0077"]
    lines = ["# Written by `edgefleet agent install-service`. Enable with:",
             f"#   systemctl daemon-reload && systemctl enable --now {UNIT_NAME}",
             "[Unit]", "Description=edgefleet agent: camera inference connected to its fleet",
             "Documentation=https://github.com/edgefleet/edgefleet/blob/main/deploy/README.md",
             "Wants=network-online.target", "After=network-online.target", "",
             "[Service]", "Type=simple", *service, "",
             "[Install]", "WantedBy=multi-user.target"]
    return "\n".join(lines) + "\n"


def default_executable() -> Path:
    """The `edgefleet` beside this Python (a venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "edgefleet"
    if beside.exists():
        return beside
    found = shutil.which("edgefleet")
    return Path(found) if found else beside


def install_service_command(
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="The agent's state dir (its only "
                                                                          "writable path)"),
    user: str = typer.Option(DEFAULT_USER, "--user", help="Dedicated user the agent runs as (create it first: "
                                                          "useradd --system --groups video edgefleet)"),
    server: str | None = typer.Option(None, "--server", help="Enroll on the first start against this server, "
                                                             f"with the token in credential {TOKEN_CREDENTIAL}"),
    executable: Path | None = typer.Option(None, "--executable", help="The edgefleet program the unit runs"),
    out: str | None = typer.Option(None, "--out", help=f"Where to write the unit ('-' = stdout); default "
                                                       f"{SYSTEM_UNIT_DIR / UNIT_NAME} as root, else stdout"),
) -> None:
    """Write the systemd unit that runs this device's agent (nothing is enabled or started)."""
    if not state_dir.is_absolute():
        raise typer.BadParameter("systemd needs an absolute path", param_hint="--state-dir")
    exe = (executable or default_executable()).absolute()
    text = render_unit(AgentUnit(executable=exe, state_dir=state_dir, user=user, server=server))
    target = out if out is not None else (str(SYSTEM_UNIT_DIR / UNIT_NAME) if os.geteuid() == 0 else "-")
    if target == "-":
        typer.echo(text, nl=False)
        return
    Path(target).write_text(text)
    typer.echo(f"wrote {target}; next: systemctl daemon-reload && systemctl enable --now {Path(target).name}",
               err=True)
