"""The `diagnostics` command's report: what an operator asks first about a device that misbehaves, in one reply.

Versions (agent, Python, runtimes, OS), the running config with secrets masked, cameras, backends and
inference devices found, the recent warnings and errors of the agent's log, and the machine's disk, memory and
temperature. Each part is gathered on its own: one that fails (no pyudev, a sensor driver error) says why in
its place and the rest of the report still comes back.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from edgefleet.redaction import redact

log = logging.getLogger(__name__)
RUNTIME_PACKAGES = ("onnxruntime", "openvino", "opencv-python-headless", "numpy", "paho-mqtt", "pydantic")
SECRET_KEYS = ("password", "secret", "token", "key")


class RecentErrors(logging.Handler):
    """The last warnings and errors logged under ``edge_agent``, for `diagnostics` (the log file may be off)."""

    def __init__(self, size: int = 50) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, Any]] = deque(maxlen=size)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                     "message": redact(record.getMessage())[:500]}
        except Exception:  # noqa: BLE001 - a bad log argument must not break logging
            return
        with self._guard:
            self.records.append(entry)

    def recent(self) -> list[dict[str, Any]]:
        with self._guard:
            return list(self.records)


_SHARED: RecentErrors | None = None
_SHARED_LOCK = threading.Lock()


def recent_errors() -> RecentErrors:
    """The one handler of this process, attached to the ``edge_agent`` logger on first use: one per process, not
    per agent, so a simulator running a thousand agents does not pass each log line through a thousand handlers
    (those agents share a log, and so their recent errors)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = RecentErrors()
            logging.getLogger("edge_agent").addHandler(_SHARED)
        return _SHARED


def versions(agent_version: str) -> dict[str, Any]:
    """Installed versions, read from package metadata so no runtime is imported just to ask."""
    found: dict[str, Any] = {"agent": agent_version, "python": platform.python_version()}
    for name in RUNTIME_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["os"] = {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
                   "platform": platform.platform()}
    return found


def masked_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config with URL passwords masked and every value whose key names a secret replaced."""

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str) and any(word in key.lower() for word in SECRET_KEYS) and not key.endswith("_file"):
            return "***"
        return redact(value)

    return walk(config)


def cameras() -> dict[str, Any]:
    """video4linux capture devices udev sees now (edge_agent.engine.discovery)."""
    from edge_agent.engine.discovery.udev import list_cameras

    return {"cameras": [c.as_dict() for c in list_cameras()]}


def backends() -> dict[str, Any]:
    """The inference backends installed and the devices each can use (edge_agent.engine.backends)."""
    from edge_agent.engine.backends.selection import ORT, OV, probe_available

    available = probe_available()
    return {"backends": {name: list(available.devices(name)) for name in (ORT, OV) if available.devices(name)},
            "onnxruntime_providers": list(available.ort_providers),
            "openvino_devices": list(available.openvino_devices)}


def machine(state_dir: Path) -> dict[str, Any]:
    """Disk (of the state dir), memory, load and temperature, through psutil."""
    import psutil

    from edge_agent.fleet.telemetry import read_temperature

    disk = psutil.disk_usage(str(state_dir))
    memory = psutil.virtual_memory()
    return {"disk": {"path": str(state_dir), "total_mb": disk.total // 2**20, "free_mb": disk.free // 2**20,
                     "percent": disk.percent},
            "memory": {"total_mb": memory.total // 2**20, "available_mb": memory.available // 2**20,
                       "percent": memory.percent,
                       "agent_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1)},
            "cpu_count": psutil.cpu_count(), "load_avg": [round(v, 2) for v in psutil.getloadavg()],
            "temperature_c": read_temperature(), "boot_time": psutil.boot_time()}


def _part(name: str, gather: Callable[[], dict[str, Any]], timings: dict[str, float]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        return gather()
    except ImportError as exc:
        return {"error": f"{name}: not available here ({exc.name or exc} is not installed)"}
    except Exception as exc:  # noqa: BLE001 - one broken part must not lose the whole report
        log.warning("diagnostics: %s failed: %s", name, exc)
        return {"error": f"{name}: {type(exc).__name__}: {exc}"[:500]}
    finally:
        timings[name] = round((time.perf_counter() - started) * 1000, 1)


def report(*, agent_version: str, config: dict[str, Any], state_dir: Path, errors: list[dict[str, Any]],
           last_error: str | None) -> dict[str, Any]:
    """The whole `diagnostics` reply."""
    timings: dict[str, float] = {}
    return {
        "versions": versions(agent_version),
        "config": masked_config(config),
        "cameras": _part("cameras", cameras, timings),
        "inference": _part("inference", backends, timings),
        "machine": _part("machine", lambda: machine(state_dir), timings),
        "recent_errors": errors[-20:],
        "last_error": redact(last_error) if last_error else None,
        "pid": os.getpid(),
        "executable": sys.executable,
        "gather_ms": timings,
    }
