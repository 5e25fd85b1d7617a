"""Hand a rewritten CRL to an external Mosquitto: copy it where the broker's `crlfile` points and send the
broker SIGHUP (the pid from its `pid_file`), which makes it read the CRL again.

Mosquitto checks the CRL when a client connects, so a revoked device is refused from its next connection
on; the server ignores whatever its open connection still sends (the device is inactive). A broker that
cannot be signalled is a logged warning, never an error for the decommission that triggered it: the CRL
is written and takes effect at the broker's next reload or restart.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from edgefleet.files import atomic_write

log = logging.getLogger(__name__)


def copy_crl(crl: Path, target: Path) -> None:
    """Replace `target` with the CRL atomically, readable by the broker's user (a CRL is public)."""
    atomic_write(target, crl.read_bytes(), 0o644)


def signal_reload(pid_file: Path) -> bool:
    """SIGHUP the process named in `pid_file`; False (and a warning) when there is none to signal."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        log.warning("could not have the broker reload its CRL (pid file %s): %s", pid_file, exc)
        return False
    return True


def publish_crl(crl: Path, target: Path | None, pid_file: Path | None) -> bool:
    """Copy the CRL for the broker and signal it, as far as each is configured; True when it was signalled."""
    if target is not None:
        try:
            copy_crl(crl, target)
        except OSError as exc:
            log.warning("could not write the broker's CRL %s: %s", target, exc)
            return False
    return signal_reload(pid_file) if pid_file is not None else False
