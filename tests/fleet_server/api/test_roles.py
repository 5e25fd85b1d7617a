import pytest

from tests.fleet_server.conftest import Api


def test_no_key_or_a_wrong_key_is_401(api: Api) -> None:
    assert api.client.get("/api/v1/devices").status_code == 401
    r = api.client.get("/api/v1/devices", headers=api.headers("efk_0123456789ab." + "B" * 43))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert api.client.get("/api/v1/devices", headers=api.headers("garbage")).status_code == 401


def test_keys_are_accepted_in_the_x_api_key_header_too(api: Api) -> None:
    assert api.client.get("/api/v1/devices", headers={"X-API-Key": api.admin_key}).status_code == 200


@pytest.mark.parametrize("role,can_read,can_operate,can_admin", [
    ("viewer", True, False, False),
    ("operator", True, True, False),
    ("admin", True, True, True),
])
def test_roles_allow_what_they_should(api: Api, role: str, can_read: bool, can_operate: bool, can_admin: bool) -> None:
    key = api.key(role)
    h = api.headers(key)
    expect = lambda ok, created=200: created if ok else 403  # noqa: E731
    assert api.client.get("/api/v1/devices", headers=h).status_code == expect(can_read)
    assert api.client.get("/api/v1/audit", headers=h).status_code == expect(can_read)
    assert api.client.post("/api/v1/tokens", json={}, headers=h).status_code == expect(can_operate, 201)
    assert api.client.get("/api/v1/apikeys", headers=h).status_code == expect(can_admin)
    assert api.client.post("/api/v1/apikeys", json={"role": "viewer", "name": "x"},
                           headers=h).status_code == expect(can_admin, 201)


def test_a_viewer_cannot_patch_a_twin_or_decommission(api: Api) -> None:
    device_id = api.enroll(api.token()).json()["device_id"]
    h = api.headers(api.key("viewer"))
    r = api.client.patch(f"/api/v1/devices/{device_id}/twin", json={"camera": "usb:0"}, headers=h)
    assert r.status_code == 403 and "operator" in r.json()["detail"]
    assert api.client.delete(f"/api/v1/devices/{device_id}", headers=h).status_code == 403
    assert api.client.get(f"/api/v1/devices/{device_id}", headers=h).json()["desired_revision"] == 0


def test_a_revoked_key_stops_working(api: Api) -> None:
    key = api.key("operator")
    key_id = next(k["id"] for k in api.client.get("/api/v1/apikeys", headers=api.headers()).json()
                  if key.startswith("efk_" + k["prefix"]))
    assert api.client.delete(f"/api/v1/apikeys/{key_id}", headers=api.headers()).status_code == 200
    r = api.client.get("/api/v1/devices", headers=api.headers(key))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_keys_are_stored_hashed_and_shown_only_at_creation(api: Api) -> None:
    key = api.key("viewer")
    listing = api.client.get("/api/v1/apikeys", headers=api.headers()).text
    assert key.split(".")[1] not in listing
    from fleet_server.db import ApiKey

    with api.fleet.db.session() as s:
        assert all(key.split(".")[1] not in k.hash for k in s.query(ApiKey))


def test_the_first_admin_key_is_written_to_a_file_only_its_owner_reads(api: Api) -> None:
    from fleet_server.fleet import admin_key_path

    path = admin_key_path(api.fleet.settings.state_dir)
    assert path.read_text().strip() == api.admin_key
    assert path.stat().st_mode & 0o777 == 0o600
