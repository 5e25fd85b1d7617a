import threading

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.x509.oid import NameOID

from edgefleet.protocol import EnrollRequest, validate_device_id
from fleet_server import credentials
from fleet_server.db import AuditEntry, Database, Device, EnrollmentToken
from fleet_server.errors import CsrInvalid, TokenExpired, TokenInvalid, TokenUsedUp
from fleet_server.pki import CertificateAuthority
from fleet_server.services import enrollment, tokens
from tests.fleet_server.conftest import make_csr


@pytest.fixture()
def ctx(ca: CertificateAuthority) -> enrollment.EnrollContext:
    return enrollment.EnrollContext(ca=ca, broker_url="mqtt://127.0.0.1:18830", signing_public_key="PEM",
                                     control_public_key="CONTROL PEM")


def _token(db: Database, **kw: object) -> str:
    with db.session() as s:
        return tokens.create_token(s, actor="test", ttl_s=int(kw.pop("ttl_s", 3600)), **kw)[1]  # type: ignore[arg-type]


def _enroll(db: Database, ctx: enrollment.EnrollContext, token: str, csr: str | None = None, name: str | None = None):
    with db.session() as s:
        return enrollment.enroll(s, EnrollRequest(token=token, csr=csr or make_csr()[1], name=name,
                                                  hardware={"cpu": "x86"}), ctx)


def _counts(db: Database) -> tuple[int, int, int]:
    """(devices, uses left over all tokens, enroll audit entries)"""
    with db.session() as s:
        return (s.scalar(sa.select(sa.func.count()).select_from(Device)) or 0,
                s.scalar(sa.select(sa.func.sum(EnrollmentToken.uses_left))) or 0,
                s.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
                    AuditEntry.action == "device.enroll")) or 0)


def test_enrollment_creates_the_device_with_token_tags_and_hashed_password(db: Database, ctx) -> None:  # noqa: ANN001
    token = _token(db, tags={"site": "lab"})
    reply = _enroll(db, ctx, token, name="Lobby Cam")
    validate_device_id(reply.device_id)
    assert reply.device_id.startswith("lobby-cam-")
    assert reply.mqtt_username == reply.device_id and reply.tags == {"site": "lab"}
    assert reply.broker_url == "mqtt://127.0.0.1:18830" and reply.signing_public_key == "PEM"
    cert = x509.load_pem_x509_certificate(reply.certificate.encode())
    cert.verify_directly_issued_by(ctx.ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == reply.device_id
    with db.session() as s:
        device = s.get(Device, reply.device_id)
        assert device.tags == {"site": "lab"} and device.hardware == {"cpu": "x86"}
        assert reply.mqtt_password not in device.mqtt_password_hash
        assert credentials.verify_secret(reply.mqtt_password, device.mqtt_password_hash)
        assert device.cert_serial == format(cert.serial_number, "x")
    assert _counts(db) == (1, 0, 1)


def test_a_bad_csr_creates_nothing_and_keeps_the_token_use(db: Database, ctx) -> None:  # noqa: ANN001
    token = _token(db)
    with pytest.raises(CsrInvalid):
        _enroll(db, ctx, token, csr="-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * 80 + "\n-----END CERTIFICATE REQUEST-----")
    assert _counts(db) == (0, 1, 0)
    _enroll(db, ctx, token)  # the use is still there
    assert _counts(db) == (1, 0, 1)


@pytest.mark.parametrize("error,make", [
    (TokenUsedUp, "reused"), (TokenExpired, "expired"), (TokenInvalid, "forged"), (TokenInvalid, "malformed"),
])
def test_refused_tokens_create_nothing(db: Database, ctx, error: type, make: str) -> None:  # noqa: ANN001
    token = _token(db)
    if make == "reused":
        _enroll(db, ctx, token)
    elif make == "expired":
        with db.session() as s:
            s.execute(sa.update(EnrollmentToken).values(expires_at=sa.func.current_timestamp()))
    elif make == "forged":
        token = token[:-6] + "XXXXXX"
    else:
        token = "not-a-token-at-all"
    before = _counts(db)
    with pytest.raises(error):
        _enroll(db, ctx, token)
    assert _counts(db) == before


def test_two_concurrent_enrollments_cannot_both_take_a_one_time_token(db: Database, ctx) -> None:  # noqa: ANN001
    token = _token(db)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def go() -> None:
        barrier.wait()
        try:
            _enroll(db, ctx, token)
            outcomes.append("ok")
        except TokenUsedUp:
            outcomes.append("used up")

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["ok", "used up"]
    assert _counts(db) == (1, 0, 1)
