from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from fleet_server.db import Database, EnrollmentToken
from fleet_server.errors import TokenExpired, TokenInvalid, TokenUsedUp
from fleet_server.services import tokens


def _create(db: Database, **kw: object) -> str:
    with db.session() as s:
        _, plain = tokens.create_token(s, actor="test", ttl_s=kw.pop("ttl_s", 3600), **kw)  # type: ignore[arg-type]
    return plain


def test_tokens_are_stored_hashed_never_in_plain(db: Database) -> None:
    plain = _create(db)
    with db.session() as s:
        row = s.scalars(sa.select(EnrollmentToken)).one()
    assert plain.split(".")[1] not in row.hash and row.hash.startswith("sha256:")


def test_a_one_time_token_works_once(db: Database) -> None:
    plain = _create(db)
    with db.session() as s:
        row = tokens.check_token(s, plain)
        tokens.consume_use(s, row.id)
    with db.session() as s, pytest.raises(TokenUsedUp, match="used up"):
        tokens.check_token(s, plain)


def test_an_n_use_token_works_n_times(db: Database) -> None:
    plain = _create(db, uses=3)
    for _ in range(3):
        with db.session() as s:
            tokens.consume_use(s, tokens.check_token(s, plain).id)
    with db.session() as s, pytest.raises(TokenUsedUp):
        tokens.check_token(s, plain)


def test_an_expired_token_is_refused(db: Database) -> None:
    plain = _create(db, ttl_s=60)
    later = datetime.now(timezone.utc) + timedelta(seconds=61)
    with db.session() as s, pytest.raises(TokenExpired, match="expired"):
        tokens.check_token(s, plain, now=later)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-4] + "AAAA",  # right id, wrong secret
    lambda t: "eft_000000000000." + t.split(".")[1],  # unknown id
])
def test_forged_tokens_are_refused(db: Database, mangle) -> None:  # noqa: ANN001
    plain = _create(db)
    with db.session() as s, pytest.raises(TokenInvalid, match="forged"):
        tokens.check_token(s, mangle(plain))


@pytest.mark.parametrize("bad", ["", "hello world", "efk_abcdef123456." + "a" * 43, "eft_nodot"])
def test_malformed_tokens_are_refused(db: Database, bad: str) -> None:
    with db.session() as s, pytest.raises(TokenInvalid, match="malformed"):
        tokens.check_token(s, bad)


def test_the_last_use_cannot_be_taken_twice(db: Database) -> None:
    plain = _create(db)
    with db.session() as s:
        token_id = tokens.check_token(s, plain).id
    with db.session() as s:
        tokens.consume_use(s, token_id)
    with db.session() as s, pytest.raises(TokenUsedUp):
        tokens.consume_use(s, token_id)
