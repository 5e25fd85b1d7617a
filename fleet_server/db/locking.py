"""Row locks for read-modify-write on both databases the server runs on."""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")


def get_for_update(session: Session, model: type[T], key: InstrumentedAttribute, value: Any,
                   touch: InstrumentedAttribute) -> T | None:
    """The row whose ``key`` is ``value``, locked until the transaction ends. PostgreSQL: SELECT ... FOR UPDATE.
    SQLite has no row locks: a no-op write to ``touch`` first takes the database's write lock before the read."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sa.update(model).where(key == value).values({touch.key: touch})
                        .execution_options(synchronize_session=False))
    query = sa.select(model).where(key == value).with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).one_or_none()
