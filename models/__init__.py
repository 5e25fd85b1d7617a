"""The signed model package: manifest, pack/verify/unpack, Ed25519 signing and a local registry.
Imports nothing heavy (no torch, no server, no agent): a camera device verifies packages with it.

Names load on first use (PEP 562): a process that only reads manifests, like the agent's inference pipeline,
never maps cryptography's libraries (~10 MB resident) or tarfile."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "IntegrityError": "models.errors", "ManifestError": "models.errors", "PackageError": "models.errors",
    "PackageNotFound": "models.errors", "RegistryConflict": "models.errors", "SignatureError": "models.errors",
    "UnsafePackageError": "models.errors", "Manifest": "models.manifest", "file_sha256": "models.package",
    "pack": "models.package", "read_manifest": "models.package", "unpack": "models.package",
    "verify": "models.package", "LocalRegistry": "models.registry", "RegistryEntry": "models.registry",
}

if TYPE_CHECKING:
    from models.errors import (IntegrityError, ManifestError, PackageError, PackageNotFound, RegistryConflict,
                               SignatureError, UnsafePackageError)
    from models.manifest import Manifest
    from models.package import file_sha256, pack, read_manifest, unpack, verify
    from models.registry import LocalRegistry, RegistryEntry


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


__all__ = sorted(_WHERE)
