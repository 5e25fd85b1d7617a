"""Random secrets (enrollment tokens, API keys, MQTT passwords) and how they are stored.

Every secret we issue is 256 bits from `secrets.token_urlsafe(32)`. A slow KDF (bcrypt, scrypt, argon2)
exists to make guessing *human-chosen* passwords expensive after a database leak; a 256-bit random value
cannot be guessed whatever the hash costs, so one SHA-256 is enough and keeps the broker's per-connect
check cheap (the embedded broker checks a password on every CONNECT). Comparisons use
`hmac.compare_digest` so timing says nothing about how much of a hash matched.

Tokens and keys carry a short public id (`eft_<id>.<secret>`, `efk_<prefix>.<secret>`): the id finds the
row, the secret is then checked in constant time, and listings can show the id without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_PREFIX = "eft_"
APIKEY_PREFIX = "efk_"
_SPLIT = re.compile(r"^(?P<kind>eft_|efk_)(?P<id>[a-z0-9]{8,32})\.(?P<secret>[A-Za-z0-9_-]{32,128})$")


def new_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_public_id(nbytes: int = 6) -> str:
    return secrets.token_hex(nbytes)


def hash_secret(secret: str) -> str:
    """`sha256:<hex>`; the scheme prefix lets a later version switch algorithms without ambiguity."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def verify_secret(secret: str, stored: str | None) -> bool:
    """Constant-time check of `secret` against a stored `hash_secret` value; False for a missing hash."""
    if not stored or not isinstance(secret, str):
        return False
    return hmac.compare_digest(hash_secret(secret).encode(), stored.encode())


def compose(kind: str, public_id: str, secret: str) -> str:
    return f"{kind}{public_id}.{secret}"


def split(value: str, kind: str) -> tuple[str, str] | None:
    """(public id, secret) of a well-formed token/key of `kind`, else None."""
    m = _SPLIT.match(value or "")
    if not m or m.group("kind") != kind:
        return None
    return m.group("id"), m.group("secret")
