"""The server's OTA end for tests: a real bridge whose handler hands block requests to a real `OtaServer` that
serves real package files from a directory (the layout the registry keeps), with assignments as a plain set
and a publish gate a test can close to hold blocks back (a server that stalls mid-download)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from edgefleet import protocol as p
from fleet_server.mqtt_bridge import MqttBridge
from fleet_server.model_store import ModelStore
from fleet_server.ota import OtaServer
from tests.fleet_server.bridge_env import Recorder
from tests.waiting import wait_for


class OtaRecorder(Recorder):
    """Records every call (as the bridge tests' Recorder) and hands block requests to ``ota`` when set."""

    ota: OtaServer | None = None

    def on_ota_get(self, device_id, request):  # noqa: ANN001, ANN201
        self._record("ota_get", device_id, request)
        if self.ota is not None:
            self.ota.handle(device_id, request)

    def requested(self, device_id: str) -> list[int]:
        """The offsets ``device_id`` asked for, in order, repeats included (each block of a run of blocks)."""
        return [offset for c in self.of(device_id) if c[0] == "ota_get" for offset in c[2].offsets()]


class Catalog:
    """Package files by sha256 in one directory, and which device may fetch which."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.assignments: set[tuple[str, str]] = set()
        self.resolve = ModelStore(root).path

    def add(self, package: Path) -> p.ModelRef:
        from models.package import file_sha256, read_manifest

        sha = file_sha256(package)
        shutil.copy(package, self.root / f"{sha}.efpkg")
        manifest = read_manifest(package)
        return p.ModelRef(name=manifest.name, version=manifest.version, sha256=sha, size=package.stat().st_size)

    def path(self, sha256: str) -> Path:
        return self.root / f"{sha256}.efpkg"

    def assign(self, device_id: str, sha256: str) -> None:
        self.assignments.add((device_id, sha256))

    def assigned(self, device_id: str, sha256: str) -> bool:
        return (device_id, sha256) in self.assignments


class Gate:
    """Between the OtaServer and the bridge: passes blocks while open; while closed, blocks at ``hold_from`` or
    beyond are dropped (counted), as a server or network that stalls mid-download. ``wait_held`` waits for one."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge
        self.hold_from: int | None = None
        self.held = 0
        self.published: list[tuple[str, int]] = []
        self._cond = threading.Condition()

    def __call__(self, device_id: str, sha256: str, offset: int, data: bytes) -> None:
        with self._cond:
            if self.hold_from is not None and offset >= self.hold_from:
                self.held += 1
                self._cond.notify_all()
                return
        self.bridge.publish_ota_block(device_id, sha256, offset, data, timeout=10)
        with self._cond:
            self.published.append((device_id, offset))
            self._cond.notify_all()

    def wait_held(self) -> None:
        wait_for(lambda: self.held > 0, 20, "a held block", cond=self._cond)


def ota_server(recorder: OtaRecorder, catalog: Catalog, publish, **kwargs: object) -> OtaServer:  # noqa: ANN001
    server = OtaServer(catalog.resolve, catalog.assigned, publish, **kwargs)
    recorder.ota = server
    return server
