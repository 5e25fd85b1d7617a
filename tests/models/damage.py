"""Every way a package can be wrong, as a table both the API tests and the CLI tests walk through.

Each case turns a good package into a bad one and says which error it must raise and what the message must say."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.errors import IntegrityError, ManifestError, PackageError, SignatureError, UnsafePackageError
from models.package import signature_document
from models.signing import key_id
from tests.models.tampering import Member, flip_byte_in_member, members_of, rewrite, write_package

Builder = Callable[[Path, Path, Ed25519PrivateKey, Ed25519PrivateKey], Path]


@dataclass(frozen=True)
class Damage:
    build: Builder  # (good package, where to write the bad one, the fleet key, another key) -> bad package
    error: type[PackageError]
    says: str


def _flip(name: str) -> Builder:
    def build(good: Path, out: Path, fleet: Ed25519PrivateKey, other: Ed25519PrivateKey) -> Path:
        shutil.copyfile(good, out)
        flip_byte_in_member(out, name, index=7)
        return out

    return build


def _resigned_manifest(new_manifest: Callable[[bytes], bytes]) -> Builder:
    """Replace manifest.json and sign the new bytes with the fleet key: only the manifest check can catch it."""

    def build(good: Path, out: Path, fleet: Ed25519PrivateKey, other: Ed25519PrivateKey) -> Path:
        old = next(m.data for m in members_of(good) if m.name == "manifest.json")
        data = new_manifest(old)
        return rewrite(good, out, replace={"manifest.json": data, "signature": signature_document(data, fleet)})

    return build


def _edit_json(edit: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def change(raw: bytes) -> bytes:
        doc = json.loads(raw)
        edit(doc)
        return json.dumps(doc).encode()

    return change


def _signed_by_other(good: Path, out: Path, fleet: Ed25519PrivateKey, other: Ed25519PrivateKey) -> Path:
    manifest = next(m.data for m in members_of(good) if m.name == "manifest.json")
    return rewrite(good, out, replace={"signature": signature_document(manifest, other)})


def _forged_key_id(good: Path, out: Path, fleet: Ed25519PrivateKey, other: Ed25519PrivateKey) -> Path:
    """Another key's signature that claims to come from the fleet key."""
    manifest = next(m.data for m in members_of(good) if m.name == "manifest.json")
    doc = json.loads(signature_document(manifest, other))
    doc["key_id"] = key_id(fleet)
    return rewrite(good, out, replace={"signature": json.dumps(doc).encode()})


def _with(**kwargs) -> Builder:
    return lambda good, out, fleet, other: rewrite(good, out, **kwargs)


def _truncated(good: Path, out: Path, fleet: Ed25519PrivateKey, other: Ed25519PrivateKey) -> Path:
    out.write_bytes(good.read_bytes()[:3000])
    return out


def _not_a_tar(good: Path, out: Path, fleet: Ed25519PrivateKey, other: Ed25519PrivateKey) -> Path:
    out.write_bytes(b"PK\x03\x04 this is a zip file, not a package" * 40)
    return out


def _only(*members: Member) -> Builder:
    return lambda good, out, fleet, other: write_package(out, list(members))


CASES: dict[str, Damage] = {
    "flipped-byte-in-model.onnx": Damage(_flip("model.onnx"), IntegrityError, "model.onnx is corrupt or altered"),
    "flipped-byte-in-model.xml": Damage(_flip("model.xml"), IntegrityError, "model.xml is corrupt or altered"),
    "flipped-byte-in-model.bin": Damage(_flip("model.bin"), IntegrityError, "model.bin is corrupt or altered"),
    "flipped-byte-in-model_card.md": Damage(_flip("model_card.md"), IntegrityError, "model_card.md is corrupt"),
    "flipped-byte-in-manifest": Damage(_flip("manifest.json"), SignatureError, "signature does not match manifest"),
    "missing-file": Damage(_with(drop="model.bin"), IntegrityError, "model.bin is listed in the manifest but missing"),
    "extra-unlisted-file": Damage(_with(add=[Member("extra.sh", b"rm -rf /\n")]), IntegrityError,
                                  "unlisted file(s) in the package: extra.sh"),
    "signed-by-another-key": Damage(_signed_by_other, SignatureError, "not by the trusted key"),
    "other-key-signature-with-forged-key-id": Damage(_forged_key_id, SignatureError, "signature does not match"),
    "missing-signature": Damage(_with(drop="signature"), SignatureError, "no signature file"),
    "malformed-signature": Damage(_with(replace={"signature": b"not json at all"}), SignatureError, "malformed"),
    "signature-not-base64": Damage(
        _with(replace={"signature": b'{"format": 1, "algorithm": "ed25519", "key_id": "x", "signature": "@@"}'}),
        SignatureError, "malformed"),
    "missing-manifest": Damage(_with(drop="manifest.json"), ManifestError, "no manifest.json"),
    "signed-manifest-that-does-not-validate": Damage(
        _resigned_manifest(_edit_json(lambda d: d.update(task="segmentation"))), ManifestError,
        "manifest.json does not validate (task"),
    "signed-manifest-missing-fields": Damage(
        _resigned_manifest(_edit_json(lambda d: d.pop("labels"))), ManifestError, "labels: Field required"),
    "signed-manifest-not-json": Damage(_resigned_manifest(lambda raw: raw[:-20]), ManifestError,
                                       "manifest.json does not validate"),
    "signed-manifest-with-unlisted-runtime": Damage(
        _resigned_manifest(_edit_json(lambda d: d["files"].pop("model.onnx"))), ManifestError,
        "names runtime file 'model.onnx' but does not list its sha256"),
    "signed-manifest-listing-a-path": Damage(
        _resigned_manifest(_edit_json(lambda d: d["files"].update({"../x": "0" * 64}))), ManifestError,
        "lists a bad file name"),
    "member-dot-dot-escape": Damage(_with(add=[Member("../evil", b"pwned")]), UnsafePackageError,
                                    "'../evil' escapes the target directory"),
    "member-dot-dot-inside": Damage(_with(prepend=[Member("a/../../evil", b"pwned")]), UnsafePackageError,
                                    "escapes the target directory"),
    "member-absolute-path": Damage(_with(add=[Member("/tmp/evil", b"pwned")]), UnsafePackageError,
                                   "'/tmp/evil' is an absolute path"),
    "member-symlink": Damage(_with(add=[Member("link", type=tarfile.SYMTYPE, linkname="/etc/passwd")]),
                             UnsafePackageError, "'link' is a symbolic link (to '/etc/passwd')"),
    "member-symlink-over-payload": Damage(
        _with(prepend=[Member("model.onnx", type=tarfile.SYMTYPE, linkname="../../outside")]),
        UnsafePackageError, "symbolic link"),
    "member-hardlink": Damage(_with(add=[Member("hard", type=tarfile.LNKTYPE, linkname="/etc/shadow")]),
                              UnsafePackageError, "'hard' is a hard link"),
    "member-device": Damage(_with(add=[Member("dev", type=tarfile.CHRTYPE)]), UnsafePackageError, "device"),
    "member-directory": Damage(_with(add=[Member("sub", type=tarfile.DIRTYPE)]), UnsafePackageError, "directory"),
    "member-sparse": Damage(_with(add=[Member("holes", b"x", type=tarfile.GNUTYPE_SPARSE)]), UnsafePackageError,
                            "'holes' is a sparse file"),
    "member-nested-path": Damage(_with(add=[Member("sub/file", b"x")]), UnsafePackageError, "nested path"),
    "member-duplicate": Damage(_with(add=[Member("model.onnx", b"replacement after the check")]),
                               UnsafePackageError, "'model.onnx' appears twice"),
    "only-an-escaping-member": Damage(_only(Member("../../evil", b"x")), UnsafePackageError, "escapes"),
    "oversized-manifest": Damage(_with(replace={"manifest.json": b"{" + b" " * (4 << 20) + b"}"}), ManifestError,
                                 "more than the 4194304-byte limit"),
    "oversized-signature": Damage(_with(replace={"signature": b" " * (64 << 10 + 1)}), SignatureError,
                                  "more than the 65536-byte limit"),
    "truncated-archive": Damage(_truncated, IntegrityError,
                                "not a readable package archive (unexpected end of data)"),
    "not-a-tar": Damage(_not_a_tar, IntegrityError, "not a readable package archive"),
}
