"""The server's model registry: signed packages uploaded by operators, indexed by name, version and sha256.

The file is stored (fleet_server.model_store) before its row is written, and removed only after its row is
gone, both under the store's lock: a row always names a file that is there. A refused upload leaves neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet_server.db.models import ModelPackage
from fleet_server.errors import Conflict, NotFound
from fleet_server.model_store import ModelStore
from fleet_server.services import audit
from fleet_server.services.devices import list_devices
from fleet_server.services.rollouts import in_use
from fleet_server.services.twin import desired_model_sha256
from models.manifest import Manifest
from models.signing import PublicKeyLike


def get_package(session: Session, name: str, version: str) -> ModelPackage:
    row = session.scalars(sa.select(ModelPackage).where(ModelPackage.name == name,
                                                        ModelPackage.version == version)).one_or_none()
    if row is None:
        raise NotFound(f"no model {name} {version} in the registry")
    return row


def list_packages(session: Session, *, name: str | None = None) -> list[ModelPackage]:
    """By name, then upload order (versions are free text; the order they came in is the one that means
    something to every model)."""
    q = sa.select(ModelPackage).order_by(ModelPackage.name, ModelPackage.uploaded_at, ModelPackage.id)
    if name is not None:
        q = q.where(ModelPackage.name == name)
    return list(session.scalars(q))


def _by_sha(session: Session, sha256: str) -> ModelPackage | None:
    return session.scalars(sa.select(ModelPackage).where(ModelPackage.sha256 == sha256)).one_or_none()


def _existing(session: Session, manifest: Manifest, sha256: str) -> ModelPackage | None:
    """The row this upload repeats (same bytes), or None when the name and version are free; Conflict when
    they already name other bytes."""
    row = session.scalars(sa.select(ModelPackage).where(ModelPackage.name == manifest.name,
                                                        ModelPackage.version == manifest.version)).one_or_none()
    if row is None:
        return None
    if row.sha256 != sha256:
        raise Conflict(f"model {manifest.name} {manifest.version} is already in the registry with other contents "
                       f"(sha256 {row.sha256}, this upload {sha256}); publish it under a new version")
    return row


def upload(session: Session, store: ModelStore, chunks: Iterable[bytes], public_key: PublicKeyLike, *,
           actor: str) -> tuple[ModelPackage, bool]:
    """Store, verify and index a package streamed in `chunks`. Returns (row, created): an upload of bytes
    already here returns their row unchanged (idempotent; nothing is audited, nothing changed). Commits."""
    sha256, size, manifest = store.add_from_stream(chunks, public_key)
    with store.lock:
        try:
            row = _existing(session, manifest, sha256)
        except Conflict:
            if _by_sha(session, sha256) is None:
                store.remove(sha256)  # stored just now, indexed by nothing
            raise
        if row is not None:
            return row, False
        if store.path(sha256) is None:  # a delete of the same bytes removed the file after it was placed
            raise Conflict(f"model {manifest.name} {manifest.version} was deleted while it was uploaded; "
                           "upload it again")
        row = _index(session, manifest, sha256, size, actor)
        try:
            session.commit()
        except IntegrityError:  # another server process indexed the same name and version first
            session.rollback()
            row = _existing(session, manifest, sha256)
            if row is None:
                raise
            return row, False
    return row, True


def _index(session: Session, manifest: Manifest, sha256: str, size: int, actor: str) -> ModelPackage:
    row = ModelPackage(name=manifest.name, version=manifest.version, sha256=sha256, size=size,
                       precision=manifest.precision, task=manifest.task, deployable=manifest.deployable,
                       manifest=manifest.model_dump(mode="json"), uploaded_by=actor,
                       uploaded_at=datetime.now(timezone.utc))
    session.add(row)
    audit.record(session, actor=actor, action="model.upload", target=sha256,
                 details={"name": manifest.name, "version": manifest.version, "size": size,
                          "precision": manifest.precision, "deployable": manifest.deployable})
    session.flush()
    return row


def users_of(session: Session, sha256: str) -> list[str]:
    """What still needs the package, as readable names: running or paused rollouts of it, and active devices
    whose desired twin names it."""
    devices = [f"device {device.id}" for device in list_devices(session) if desired_model_sha256(device) == sha256]
    return in_use(session, sha256) + devices


def delete(session: Session, store: ModelStore, name: str, version: str, *, actor: str) -> ModelPackage:
    """Remove the package's row, then its file. Conflict while anything still uses it (users_of). Commits."""
    with store.lock:
        row = get_package(session, name, version)
        users = users_of(session, row.sha256)
        if users:
            shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
            raise Conflict(f"model {name} {version} is still in use ({shown}); point them at another model first")
        session.delete(row)
        audit.record(session, actor=actor, action="model.delete", target=row.sha256,
                     details={"name": name, "version": version})
        session.commit()
        store.remove(row.sha256)
    return row
