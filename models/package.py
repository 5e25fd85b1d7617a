"""Pack, verify and unpack signed model packages (``NAME-VERSION.efpkg``).

Layout: an uncompressed tar of flat plain files, written deterministically (members in the order ``manifest.json``,
``signature``, then the payload sorted by name; mtime = the manifest's ``created_at``; uid/gid 0; mode 0644; no
directories or links). ``manifest.json`` is ``Manifest.canonical_bytes()`` and lists the sha256 of every payload file.

The ``signature`` file is UTF-8 JSON::

    {"format": 1, "algorithm": "ed25519", "key_id": "<16 hex>", "signature": "<base64 of 64 raw bytes>"}

The signature is Ed25519 over the bytes of ``manifest.json`` exactly as stored in the archive; ``key_id`` (see
``models.signing.key_id``) is a hint that lets a refusal say which key signed it. It is not trusted: only the
signature check is.

Verification, in order: every member is a uniquely named plain file with a safe flat name (UnsafePackageError);
manifest.json is present (ManifestError); the signature is present, well formed and made by the trusted key over the
manifest bytes (SignatureError); the manifest validates (ManifestError); every listed file is present with its sha256
and nothing else is there (IntegrityError). The manifest is parsed only after its signature checks out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from models import archive
from models.errors import IntegrityError, ManifestError, PackageError, PackageNotFound, SignatureError
from models.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest
from models.signing import PublicKeyLike, key_id, load_public_key, sign, verify_signature

SIGNATURE_FORMAT = 1
SIGNATURE_ALGORITHM = "ed25519"


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a whole file: how OTA and the server name a package."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError:
        raise PackageNotFound(f"no file at {path}") from None


def signature_document(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    doc = {"format": SIGNATURE_FORMAT, "algorithm": SIGNATURE_ALGORITHM, "key_id": key_id(private_key),
           "signature": base64.b64encode(sign(manifest_bytes, private_key)).decode("ascii")}
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def _parse_signature(data: bytes, where: str) -> tuple[str, bytes]:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if doc.get("format") != SIGNATURE_FORMAT or doc.get("algorithm") != SIGNATURE_ALGORITHM:
            raise ValueError(f"unsupported format/algorithm {doc.get('format')!r}/{doc.get('algorithm')!r}")
        signature = base64.b64decode(doc["signature"], validate=True)
        signer = str(doc.get("key_id", "?"))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureError(f"{where}: signature file is malformed ({exc})") from None
    return signer, signature


def _runtime_files(manifest: Manifest) -> list[str]:
    names = [manifest.runtimes.onnx] if manifest.runtimes.onnx else []
    if manifest.runtimes.openvino is not None:
        names += [manifest.runtimes.openvino.xml, manifest.runtimes.openvino.bin]
    return names


def _parse_manifest(data: bytes, where: str) -> Manifest:
    try:
        manifest = Manifest.model_validate_json(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
        raise ManifestError(f"{where}: manifest.json does not validate ({problems})") from None
    for name in manifest.files:
        try:
            archive.check_file_name(name, where=where)
        except PackageError as exc:
            raise ManifestError(f"{where}: manifest.json lists a bad file name: {exc}") from None
        if name in archive.RESERVED_NAMES:
            raise ManifestError(f"{where}: manifest.json lists the reserved name {name!r} as a payload file")
    for name in _runtime_files(manifest):
        if name not in manifest.files:
            raise ManifestError(f"{where}: manifest.json names runtime file {name!r} but does not list its sha256")
    return manifest


def _check(scan: archive.ScanResult, public_key: PublicKeyLike, where: str) -> Manifest:
    if scan.manifest_bytes is None:
        raise ManifestError(f"{where}: no manifest.json in the package")
    if scan.signature_bytes is None:
        raise SignatureError(f"{where}: no signature file; the package is unsigned")
    trusted = load_public_key(public_key)
    signer, signature = _parse_signature(scan.signature_bytes, where)
    try:
        verify_signature(scan.manifest_bytes, signature, trusted)
    except SignatureError:
        if signer != key_id(trusted):
            raise SignatureError(f"{where}: signed by key {signer}, not by the trusted key {key_id(trusted)}") from None
        raise SignatureError(f"{where}: signature does not match manifest.json (the manifest or signature was "
                             "altered)") from None
    manifest = _parse_manifest(scan.manifest_bytes, where)
    for name, expected in sorted(manifest.files.items()):
        actual = scan.digests.get(name)
        if actual is None:
            raise IntegrityError(f"{where}: {name} is listed in the manifest but missing from the package")
        if actual != expected:
            raise IntegrityError(f"{where}: {name} is corrupt or altered (sha256 {actual[:16]}..., manifest says "
                                 f"{expected[:16]}...)")
    extra = sorted(set(scan.digests) - set(manifest.files))
    if extra:
        raise IntegrityError(f"{where}: unlisted file(s) in the package: {', '.join(extra)}")
    return manifest


def verify(pkg: Path, public_key: PublicKeyLike) -> Manifest:
    """Check everything (see the module docstring) in one streaming pass without extracting; return the manifest."""
    pkg = Path(pkg)
    return _check(archive.scan(pkg), public_key, pkg.name)


def read_manifest(pkg: Path) -> Manifest:
    """The manifest WITHOUT any verification: for display and indexing only, never for deciding to run a model."""
    pkg = Path(pkg)
    data = archive.read_member(pkg, MANIFEST_NAME, archive.MAX_MANIFEST_BYTES)
    if data is None:
        raise ManifestError(f"{pkg.name}: no manifest.json in the package")
    return _parse_manifest(data, pkg.name)


def unpack(pkg: Path, dest: Path, public_key: PublicKeyLike, *, replace: bool = False) -> Manifest:
    """Verify ``pkg`` and leave its files (manifest.json and signature included) in ``dest``.

    The files are written to a temp directory beside ``dest`` during the single verifying pass and renamed into place
    only when every check passed, so what lands in ``dest`` is exactly what was verified, and a failure leaves
    nothing behind. An existing ``dest`` is refused unless ``replace`` is set."""
    pkg, dest = Path(pkg), Path(dest)
    if (dest.exists() or dest.is_symlink()) and not replace:
        raise PackageError(f"{dest} already exists; refusing to unpack {pkg.name} over it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.unpack-"))
    try:
        manifest = _check(archive.scan(pkg, extract_to=tmp), public_key, pkg.name)
        if dest.exists() or dest.is_symlink():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
            os.replace(dest, old / "x")
            try:
                os.replace(tmp, dest)
            except BaseException:
                os.replace(old / "x", dest)  # put the previous contents back
                old.rmdir()
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
        archive.fsync_dir(dest)
        archive.fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def pack(manifest: Manifest, files: Mapping[str, Path], out_dir: Path, private_key: Ed25519PrivateKey) -> Path:
    """Sign and write ``out_dir/<manifest.package_filename>`` holding ``files`` (name in package -> source path).

    Fills ``manifest.files`` (in place) with the sha256 of every file. The archive is written to a temp file in
    ``out_dir`` and renamed over the target, so readers never see half a package."""
    for name in files:
        archive.check_file_name(name, where=f"pack {manifest.package_filename}")
        if name in archive.RESERVED_NAMES:
            raise archive.UnsafePackageError(f"pack: payload file name {name!r} clashes with the package's own "
                                             f"{name}")
    missing = [name for name in _runtime_files(manifest) if name not in files]
    if missing:
        raise ManifestError(f"pack: the manifest names runtime file(s) {', '.join(missing)} but they were not given")
    payload: dict[str, tuple[Path, str, int]] = {}
    for name, path in files.items():
        path = Path(path)
        if not path.is_file():
            raise PackageNotFound(f"pack: {name}: no file at {path}")
        payload[name] = (path, file_sha256(path), path.stat().st_size)
    manifest.files = {name: payload[name][1] for name in sorted(payload)}
    manifest_bytes = manifest.canonical_bytes()
    _parse_manifest(manifest_bytes, f"pack {manifest.package_filename}")  # what we sign must read back
    control = [(MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, signature_document(manifest_bytes, private_key))]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / manifest.package_filename
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            archive.write_tar(fh, control, payload, int(manifest.created_at.timestamp()))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        archive.fsync_dir(out_dir)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
