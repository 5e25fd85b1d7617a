"""API keys with roles. viewer < operator < admin: viewers read, operators change devices/twins/tokens,
admins also manage keys."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet_server import credentials
from fleet_server.db.models import ApiKey
from fleet_server.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from fleet_server.services import audit

ROLES = ("viewer", "operator", "admin")
NAME_MAX = 64  # "apikey:<12 hex>(<name>)" must fit the audit log's 128-character actor column
RANK = {role: i for i, role in enumerate(ROLES)}


def create_key(session: Session, *, role: str, name: str, actor: str) -> tuple[ApiKey, str]:
    if role not in RANK:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if not 1 <= len(name) <= NAME_MAX:
        raise InvalidInput(f"an API key name has 1-{NAME_MAX} characters (got {len(name)})")
    prefix, secret = credentials.new_public_id(), credentials.new_secret()
    row = ApiKey(prefix=prefix, hash=credentials.hash_secret(secret), role=role, name=name,
                 created_at=datetime.now(timezone.utc))
    session.add(row)
    audit.record(session, actor=actor, action="apikey.create", target=prefix, details={"role": role, "name": name})
    session.flush()
    return row, credentials.compose(credentials.APIKEY_PREFIX, prefix, secret)


def ensure_first_admin(session: Session) -> str | None:
    """Create the first admin key when no key exists at all; its plaintext, or None when keys exist."""
    if session.scalar(sa.select(sa.func.count()).select_from(ApiKey)):
        return None
    _, plaintext = create_key(session, role="admin", name="first admin", actor="server")
    return plaintext


def authenticate(session: Session, key: str | None) -> ApiKey:
    if not key:
        raise Unauthorized("missing API key: send it as `Authorization: Bearer <key>` or `X-API-Key`")
    parts = credentials.split(key, credentials.APIKEY_PREFIX)
    if parts is None:
        raise Unauthorized("malformed API key")
    prefix, secret = parts
    row = session.scalars(sa.select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()
    if row is None or not credentials.verify_secret(secret, row.hash):
        raise Unauthorized("invalid API key")
    if row.revoked_at is not None:
        raise Unauthorized(f"API key {prefix} was revoked")
    return row


def require(key: ApiKey, role: str) -> None:
    if RANK[key.role] < RANK[role]:
        raise Forbidden(f"this needs the {role} role; key {key.prefix} is {key.role}")


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(sa.select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, key_id: int, *, actor: str) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    if row.revoked_at is not None:
        raise Conflict(f"API key {row.prefix} is already revoked")
    if row.role == "admin" and _active_admins(session) <= 1:
        raise Conflict(f"API key {row.prefix} is the last active admin key: revoking it would lock everyone out "
                       "of key management; create another admin key first")
    row.revoked_at = datetime.now(timezone.utc)
    audit.record(session, actor=actor, action="apikey.revoke", target=row.prefix)
    session.flush()
    return row


def _active_admins(session: Session) -> int:
    query = sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))
    return int(session.scalar(query) or 0)


def actor_of(key: ApiKey) -> str:
    """The audit log's actor for a key; it fits the actor column whatever the key's name (names are bounded on
    creation, and older long names are cut here)."""
    return f"apikey:{key.prefix}({key.name[:NAME_MAX]})"
