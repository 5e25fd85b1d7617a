"""A/B model slots: install into the idle slot, switch with one atomic rename, roll back on failure.

The running model is never touched while a new one is installed: a package is verified (sha256 of the file
against the desired reference, Ed25519 signature and per-file hashes through ``models.package``) and
unpacked into the inactive slot. Only then does the pointer file ``current.json`` get replaced with
``os.replace``; if the new model cannot load or warm up, :meth:`ModelSlots.rollback` points back at the
previous slot, whose files are still intact.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgefleet.protocol import ModelRef
from edge_agent.errors import ModelInstallError
from edge_agent.fleet.state import atomic_write
from models.manifest import MANIFEST_NAME, Manifest

log = logging.getLogger(__name__)

Slot = Literal["A", "B"]
POINTER = "current.json"
UPDATE = "update.json"  # the last update's final state, reported until the next update ends
PACKAGE_SHA = ".package-sha256"


@dataclass(frozen=True)
class SlotInfo:
    slot: Slot
    path: Path
    manifest: Manifest
    package_sha256: str

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.manifest.name, version=self.manifest.version, sha256=self.package_sha256)


def _other(slot: Slot | None) -> Slot:
    return "B" if slot == "A" else "A"


class ModelSlots:
    """Two slot directories under ``root`` and a pointer naming the active one (and the one before it)."""

    def __init__(self, root: Path, public_key_path: Path, packages_dir: Path) -> None:
        self.root = Path(root)
        self.public_key_path = Path(public_key_path)
        self.packages_dir = Path(packages_dir)

    # pointer ----------------------------------------------------------------------------------
    def _pointer(self) -> dict:
        path = self.root / POINTER
        if not path.exists():
            return {"active": None, "previous": None}
        try:
            return json.loads(path.read_text())
        except ValueError:
            log.error("slot pointer %s is unreadable; treating as empty", path)
            return {"active": None, "previous": None}

    def _write_pointer(self, active: Slot | None, previous: Slot | None) -> None:
        atomic_write(self.root / POINTER, json.dumps({"active": active, "previous": previous}) + "\n")

    def info(self, slot: Slot | None) -> SlotInfo | None:
        if slot not in ("A", "B"):
            return None
        path = self.root / slot
        try:
            manifest = Manifest.model_validate_json((path / MANIFEST_NAME).read_text())
            sha = (path / PACKAGE_SHA).read_text().strip()
        except (OSError, ValueError):
            return None
        return SlotInfo(slot, path, manifest, sha)

    def active(self) -> SlotInfo | None:
        return self.info(self._pointer().get("active"))

    def previous(self) -> SlotInfo | None:
        return self.info(self._pointer().get("previous"))

    # install / switch / roll back --------------------------------------------------------------
    def locate(self, ref: ModelRef) -> Path:
        """The package for ``ref`` from the local cache (OTA download arrives in a later version)."""
        path = self.packages_dir / f"{ref.sha256}.efpkg"
        if not path.exists():
            raise ModelInstallError(f"model package {ref.sha256} not available locally")
        return path

    def install(self, package: Path, expect: ModelRef | None = None) -> SlotInfo:
        """Verify ``package`` and unpack it into the inactive slot. The active slot is not touched."""
        from models.package import file_sha256, unpack
        from models.signing import load_public_key

        sha = file_sha256(package)
        if expect is not None and sha != expect.sha256:
            raise ModelInstallError(f"package {package.name} has sha256 {sha}, expected {expect.sha256}")
        if not self.public_key_path.exists():
            raise ModelInstallError(f"no model-signing public key at {self.public_key_path}; enroll first")
        target: Slot = _other(self._pointer().get("active"))
        dest = self.root / target
        staging = self.root / f".{target}.incoming"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            manifest = unpack(package, staging, load_public_key(self.public_key_path))
        except Exception as exc:  # noqa: BLE001 - models.package raises its own tree; we report one kind
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelInstallError(f"refused model package {package.name}: {exc}") from exc
        if expect is not None and (manifest.name, manifest.version) != (expect.name, expect.version):
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelInstallError(f"package {package.name} holds {manifest.name} {manifest.version}, "
                               f"expected {expect.name} {expect.version}")
        (staging / PACKAGE_SHA).write_text(sha + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
        log.info("installed %s %s into slot %s", manifest.name, manifest.version, target)
        return SlotInfo(target, dest, manifest, sha)

    def activate(self, slot: Slot) -> SlotInfo:
        """Point at ``slot`` (atomically); the slot that was active becomes the rollback target."""
        info = self.info(slot)
        if info is None:
            raise ModelInstallError(f"slot {slot} holds no installed model")
        current = self._pointer().get("active")
        self._write_pointer(slot, current if current != slot else self._pointer().get("previous"))
        return info

    def rollback(self) -> SlotInfo | None:
        """Point back at the previous slot (or at nothing if there was none)."""
        pointer = self._pointer()
        previous = pointer.get("previous")
        if self.info(previous) is None:
            self._write_pointer(None, pointer.get("active"))
            return None
        self._write_pointer(previous, pointer.get("active"))
        log.warning("rolled back to slot %s", previous)
        return self.info(previous)

    # the last update's final state ---------------------------------------------------------------
    def record_update(self, sha256: str, state: str, reason: str | None = None, shadow: dict | None = None) -> dict:
        """Persist how the last update ended, beside the pointer, so a restarted agent still reports it (with
        its shadow comparison, when it had one)."""
        update = {"sha256": sha256, "state": state, "reason": reason[:300] if reason else None}
        if shadow is not None:
            update["shadow"] = shadow
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / UPDATE, json.dumps(update) + "\n")
        return update

    def last_update(self) -> dict | None:
        try:
            update = json.loads((self.root / UPDATE).read_text())
        except (OSError, ValueError):
            return None
        return update if isinstance(update, dict) else None
