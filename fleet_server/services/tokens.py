"""Enrollment tokens: created with an expiry and a number of uses, stored hashed, consumed atomically."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet_server import credentials
from fleet_server.db.models import EnrollmentToken
from fleet_server.errors import InvalidInput, TokenExpired, TokenInvalid, TokenUsedUp
from fleet_server.services import audit


def _now() -> datetime:
    return datetime.now(timezone.utc)


def create_token(session: Session, *, actor: str, ttl_s: int, uses: int = 1,
                 tags: dict[str, str] | None = None) -> tuple[EnrollmentToken, str]:
    """A new token row and its plaintext (returned once, never stored)."""
    if ttl_s <= 0:
        raise InvalidInput("token lifetime must be positive")
    if uses < 1:
        raise InvalidInput("a token needs at least one use")
    now = _now()
    public_id, secret = credentials.new_public_id(), credentials.new_secret()
    row = EnrollmentToken(id=public_id, hash=credentials.hash_secret(secret), uses_left=uses, uses_total=uses,
                          expires_at=now + timedelta(seconds=ttl_s), tags=dict(tags or {}), created_by=actor,
                          created_at=now)
    session.add(row)
    audit.record(session, actor=actor, action="token.create", target=public_id,
                 details={"uses": uses, "ttl_s": ttl_s, "tags": row.tags})
    session.flush()
    return row, credentials.compose(credentials.TOKEN_PREFIX, public_id, secret)


def list_tokens(session: Session) -> list[EnrollmentToken]:
    return list(session.scalars(sa.select(EnrollmentToken).order_by(EnrollmentToken.created_at.desc())))


def check_token(session: Session, token: str, *, now: datetime | None = None) -> EnrollmentToken:
    """The token's row if it may enroll a device now; raise a clear error otherwise. Consumes nothing."""
    now = now or _now()
    parts = credentials.split(token, credentials.TOKEN_PREFIX)
    if parts is None:
        raise TokenInvalid("malformed enrollment token: expected eft_<id>.<secret> as printed by `token create`")
    public_id, secret = parts
    row = session.get(EnrollmentToken, public_id)
    if row is None or not credentials.verify_secret(secret, row.hash):
        raise TokenInvalid("unknown or forged enrollment token")
    if row.expires_at <= now:
        raise TokenExpired(f"enrollment token {public_id} expired at {row.expires_at.isoformat()}")
    if row.uses_left <= 0:
        raise TokenUsedUp(f"enrollment token {public_id} has been used up ({row.uses_total} use(s))")
    return row


def consume_use(session: Session, token_id: str, *, now: datetime | None = None) -> None:
    """Take one use in a single conditional UPDATE, so two concurrent enrollments cannot both take the last
    use (PostgreSQL re-checks the WHERE after the row lock; SQLite serialises writers). Part of the caller's
    transaction: if creating the device fails afterwards, the rollback gives the use back."""
    now = now or _now()
    result = session.execute(
        sa.update(EnrollmentToken)
        .where(EnrollmentToken.id == token_id, EnrollmentToken.uses_left > 0, EnrollmentToken.expires_at > now)
        .values(uses_left=EnrollmentToken.uses_left - 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise TokenUsedUp(f"enrollment token {token_id} has been used up or expired")
