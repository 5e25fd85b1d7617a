"""Ed25519 keys: created once with safe permissions, loadable in every form, and a signature checks only the exact
bytes it was made over, by the key that made it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgefleet.paths import signing_key_path, signing_public_key_path
from models.errors import SignatureError
from models.signing import (generate_private_key, key_id, load_or_create_private_key, load_private_key,
                            load_public_key, public_key_pem, sign, verify_signature)


def test_load_or_create_writes_a_0600_key_and_the_public_pem_where_paths_expects(state_dir: Path) -> None:
    path = signing_key_path(state_dir)
    key = load_or_create_private_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert signing_public_key_path(state_dir).read_text() == public_key_pem(key)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_load_or_create_returns_the_same_key_the_second_time(state_dir: Path) -> None:
    path = signing_key_path(state_dir)
    first = load_or_create_private_key(path)
    second = load_or_create_private_key(path)
    assert key_id(first) == key_id(second)
    assert key_id(load_private_key(path)) == key_id(first)


def test_load_or_create_restores_a_deleted_public_pem(state_dir: Path) -> None:
    key = load_or_create_private_key(signing_key_path(state_dir))
    signing_public_key_path(state_dir).unlink()
    load_or_create_private_key(signing_key_path(state_dir))
    assert key_id(load_public_key(signing_public_key_path(state_dir))) == key_id(key)


def test_key_id_is_16_hex_digits_and_the_same_for_private_and_public_halves() -> None:
    key = generate_private_key()
    assert re.fullmatch(r"[0-9a-f]{16}", key_id(key))
    assert key_id(key) == key_id(key.public_key()) == key_id(load_public_key(public_key_pem(key)))
    assert key_id(key) != key_id(generate_private_key())


def test_signature_verifies_only_the_signed_bytes_with_the_signing_key() -> None:
    key, other = generate_private_key(), generate_private_key()
    signature = sign(b"manifest bytes", key)
    assert len(signature) == 64
    verify_signature(b"manifest bytes", signature, key.public_key())
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(b"manifest bytez", signature, key.public_key())
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(b"manifest bytes", signature, other.public_key())
    with pytest.raises(SignatureError, match="64"):
        verify_signature(b"manifest bytes", signature[:10], key.public_key())


def test_load_private_key_refuses_a_missing_file_and_a_non_ed25519_key(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="no signing key at .*missing.pem"):
        load_private_key(tmp_path / "missing.pem")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pem").write_bytes(ec_key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    with pytest.raises(SignatureError, match="not an Ed25519 private key"):
        load_private_key(tmp_path / "ec.pem")


def test_load_public_key_refuses_garbage_and_other_algorithms(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="no public key at"):
        load_public_key(tmp_path / "missing.pub.pem")
    with pytest.raises(SignatureError, match="not a PEM public key"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(SignatureError, match="not an Ed25519 public key"):
        load_public_key(ec_pem)
