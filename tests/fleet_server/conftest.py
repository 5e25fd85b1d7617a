"""Fixtures for the fleet server: a fresh database per test on SQLite AND PostgreSQL, a fleet CA, CSRs,
and the HTTP app (without MQTT; the MQTT end-to-end tests start whole servers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.db import Database
from fleet_server.pki import CertificateAuthority
from fleet_server.settings import ServerSettings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new schema in the session's scratch PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleet.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{base}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture()
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture()
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "pki")


def make_csr(common_name: str = "whatever-the-device-asks") -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .sign(key, hashes.SHA256()))
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture()
def csr() -> str:
    return make_csr()[1]


@pytest.fixture()
def settings(state_dir: Path, db_url: str) -> ServerSettings:
    return ServerSettings(state_dir=state_dir, db_url=db_url, port=0, embedded_broker_port=0)


class Api:
    """A TestClient plus the keys to call it with."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.fleet = client.app.state.fleet
        self.admin_key: str = self.fleet.admin_key

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def key(self, role: str) -> str:
        r = self.client.post("/api/v1/apikeys", json={"role": role, "name": f"test {role}"}, headers=self.headers())
        assert r.status_code == 201, r.text
        return r.json()["key"]

    def token(self, **body: object) -> str:
        r = self.client.post("/api/v1/tokens", json=body, headers=self.headers())
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def enroll(self, token: str, csr: str | None = None, **extra: object):  # noqa: ANN201 - httpx.Response
        return self.client.post("/api/v1/enroll", json={"token": token, "csr": csr or make_csr()[1], **extra})


@pytest.fixture()
def api(settings: ServerSettings) -> Iterator[Api]:
    """The HTTP API without a broker (twin changes are stored, not published)."""
    with TestClient(create_app(settings, start_mqtt=False)) as client:
        yield Api(client)
