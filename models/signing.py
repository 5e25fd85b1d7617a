"""Ed25519 keys and signatures for model packages.

The fleet has one signing key (see ``edgefleet.paths.signing_key_path``). Training signs packages with its private
half; the server hands the public half to devices at enrollment; agents verify every package against it before
loading a byte. Keys are stored as PEM: the private key as unencrypted PKCS#8 with mode 0600, the public key as
SubjectPublicKeyInfo beside it (``<stem>.pub.pem``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgefleet.files import atomic_write
from models.errors import SignatureError

PublicKeyLike = Ed25519PublicKey | Ed25519PrivateKey | str | bytes | Path
KEY_ID_HEX_CHARS = 16


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_path_for(private_path: Path) -> Path:
    """Where the public half of ``private_path`` lives: ``keys/model-signing.pem`` -> ``keys/model-signing.pub.pem``."""
    return private_path.with_name(private_path.stem + ".pub.pem")


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as PEM text; a private key gives its public half."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """A short fingerprint (first 16 hex digits of the sha256 of the raw 32 public bytes), for humans and for the
    signature file, so "signed by another key" can say which one."""
    public = public_key.public_key() if isinstance(public_key, Ed25519PrivateKey) else public_key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX_CHARS]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"no signing key at {path} (run `edgefleet model keygen`)") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """Load the signing key at ``path``, creating it (mode 0600, parent 0700) and its public PEM if missing.

    Safe when several programs start at once on a fresh machine: the key file appears only complete and only once
    (the first creator wins, the others load its key), and nothing replaces it afterwards, so a caller may hold
    the returned key until it signs and the file still holds that key. The public PEM is rewritten only with the
    public half of that one key, so concurrent writers agree byte for byte."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, private_key_pem(generate_private_key()), 0o600, exclusive=True)
    key = load_private_key(path)
    pub_path = public_key_path_for(path)
    pem = public_key_pem(key).encode("ascii")
    if not pub_path.exists() or pub_path.read_bytes() != pem:
        atomic_write(pub_path, pem, 0o644, exclusive=False)
    return key


def load_public_key(pem_or_path: PublicKeyLike) -> Ed25519PublicKey:
    """Accepts a key object, PEM text or bytes, or a path to a PEM file (a ``str`` not starting with
    ``-----BEGIN`` is taken as a path)."""
    if isinstance(pem_or_path, Ed25519PublicKey):
        return pem_or_path
    if isinstance(pem_or_path, Ed25519PrivateKey):
        return pem_or_path.public_key()
    source = "PEM text"
    if isinstance(pem_or_path, str) and pem_or_path.lstrip().startswith("-----BEGIN"):
        data = pem_or_path.encode("ascii", "replace")
    elif isinstance(pem_or_path, bytes):
        data = pem_or_path
    else:
        path = Path(pem_or_path)
        source = str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SignatureError(f"no public key at {path}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{source} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{source} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def sign(data: bytes, key: Ed25519PrivateKey) -> bytes:
    """The raw 64-byte Ed25519 signature of ``data``."""
    return key.sign(data)


def verify_signature(data: bytes, signature: bytes, public_key: PublicKeyLike) -> None:
    """Raise SignatureError unless ``signature`` is ``public_key``'s signature of exactly ``data``."""
    key = load_public_key(public_key)
    if len(signature) != 64:
        raise SignatureError(f"signature is {len(signature)} bytes, an Ed25519 signature is 64")
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError(f"signature does not match (not made by key {key_id(key)} over these bytes)") from None
