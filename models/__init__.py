"""The signed model package: manifest, pack/verify/unpack, Ed25519 signing and a local registry.
Imports nothing heavy (no torch, no server, no agent): a camera device verifies packages with it."""

from models.errors import (IntegrityError, ManifestError, PackageError, PackageNotFound, RegistryConflict,
                           SignatureError, UnsafePackageError)
from models.manifest import Manifest
from models.package import file_sha256, pack, read_manifest, unpack, verify
from models.registry import LocalRegistry, RegistryEntry

__all__ = ["IntegrityError", "LocalRegistry", "Manifest", "ManifestError", "PackageError", "PackageNotFound",
           "RegistryConflict", "RegistryEntry", "SignatureError", "UnsafePackageError", "file_sha256", "pack",
           "read_manifest", "unpack", "verify"]
