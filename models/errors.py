"""The error tree of the model package. Every message names the package or file concerned, so a CLI can print
it as one line and an agent can log it as the reason it refused an update."""

from __future__ import annotations


class PackageError(Exception):
    """Base of everything that can go wrong reading, writing, verifying or storing a model package."""


class ManifestError(PackageError):
    """manifest.json is missing, is not JSON, or does not validate against the Manifest schema."""


class IntegrityError(PackageError):
    """The package's bytes do not match its manifest: a sha256 differs, a listed file is missing, an unlisted
    file is present, or the archive itself is truncated or unreadable."""


class SignatureError(PackageError):
    """The signature is missing or malformed, was made by another key, or does not match the manifest bytes."""


class UnsafePackageError(PackageError):
    """The archive holds a member that could write outside the target directory or is not a plain file:
    an absolute path, `..`, a nested path, a symlink or hardlink, a device, or a duplicate name."""


class PackageNotFound(PackageError, LookupError):
    """No such package file, or no such name/version in a registry."""


class RegistryConflict(PackageError):
    """A registry already holds a different package under the same name and version."""
