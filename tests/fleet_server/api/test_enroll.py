import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.fleet_server.conftest import Api, make_csr


def _device_count(api: Api) -> int:
    r = api.client.get("/api/v1/devices", headers=api.headers())
    assert r.status_code == 200
    return len(r.json())


def test_enroll_returns_a_certificate_signed_by_the_fleet_ca_for_the_new_device(api: Api) -> None:
    r = api.enroll(api.token(tags={"site": "lab"}), name="door")
    assert r.status_code == 200, r.text
    body = r.json()
    ca = x509.load_pem_x509_certificate(body["ca_certificate"].encode())
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == body["device_id"]
    assert body["signing_public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert body["mqtt_username"] == body["device_id"] and len(body["mqtt_password"]) >= 40
    assert body["tags"] == {"site": "lab"}
    device = api.client.get(f"/api/v1/devices/{body['device_id']}", headers=api.headers()).json()
    assert device["status"] == "offline" and device["in_sync"] is None and device["name"] == "door"


def test_a_reused_one_time_token_is_forbidden_and_creates_nothing(api: Api) -> None:
    token = api.token()
    assert api.enroll(token).status_code == 200
    r = api.enroll(token)
    assert r.status_code == 403 and "used up" in r.json()["detail"]
    assert _device_count(api) == 1


def test_an_n_use_token_enrolls_n_devices(api: Api) -> None:
    token = api.token(uses=2)
    assert [api.enroll(token).status_code for _ in range(3)] == [200, 200, 403]
    assert _device_count(api) == 2


@pytest.mark.parametrize("token,code,words", [
    ("eft_0123456789ab." + "A" * 43, 401, "forged"),
    ("short", 401, "malformed"),
    ("x" * 40, 401, "malformed"),
])
def test_forged_and_malformed_tokens_are_unauthorized(api: Api, token: str, code: int, words: str) -> None:
    r = api.enroll(token)
    assert r.status_code == code and words in r.json()["detail"]
    assert _device_count(api) == 0


def test_a_missing_token_is_unauthorized(api: Api) -> None:
    r = api.client.post("/api/v1/enroll", json={"csr": make_csr()[1]})
    assert r.status_code == 401


def test_an_expired_token_is_forbidden(api: Api) -> None:
    import sqlalchemy as sa

    from fleet_server.db import EnrollmentToken

    token = api.token(ttl_s=60)
    with api.fleet.db.session() as s:
        s.execute(sa.update(EnrollmentToken).values(expires_at=sa.func.current_timestamp()))
    r = api.enroll(token)
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    assert _device_count(api) == 0


def test_a_bad_csr_is_422_and_the_token_use_survives(api: Api) -> None:
    token = api.token()
    r = api.enroll(token, csr="-----BEGIN CERTIFICATE REQUEST-----\n" + "QUFB" * 30 + "\n-----END CERTIFICATE REQUEST-----\n")
    assert r.status_code == 422 and "CSR" in r.json()["detail"]
    assert _device_count(api) == 0
    tokens = api.client.get("/api/v1/tokens", headers=api.headers()).json()
    assert tokens[0]["uses_left"] == 1
    assert api.enroll(token).status_code == 200


def test_a_body_that_is_not_an_object_is_refused(api: Api) -> None:
    r = api.client.post("/api/v1/enroll", json=["nope"])
    assert r.status_code == 401
    assert _device_count(api) == 0


def test_tokens_without_a_ttl_get_the_servers_default_lifetime(api: Api) -> None:
    from datetime import datetime

    r = api.client.post("/api/v1/tokens", json={}, headers=api.headers()).json()
    life = datetime.fromisoformat(r["expires_at"]) - datetime.fromisoformat(r["created_at"])
    assert life.total_seconds() == api.fleet.settings.token_default_ttl_s


def test_token_requests_with_bad_values_are_refused(api: Api) -> None:
    for body in ({"uses": 0}, {"ttl_s": -5}, {"tags": {"k": 1}}, {"what": 1}):
        assert api.client.post("/api/v1/tokens", json=body, headers=api.headers()).status_code == 422
    assert api.client.get("/api/v1/tokens", headers=api.headers()).json() == []


def test_the_signing_key_handed_out_verifies_packages_signed_with_the_fleet_key(api: Api) -> None:
    from models.signing import load_or_create_private_key, load_public_key, sign

    body = api.enroll(api.token()).json()
    private = load_or_create_private_key(api.fleet.settings.signing_key_path())
    signature = sign(b"manifest bytes", private)
    load_public_key(body["signing_public_key"]).verify(signature, b"manifest bytes")
