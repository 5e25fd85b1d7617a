"""Text the database or the JSON encoder cannot take must be refused at the door, not crash later: PostgreSQL
cannot store or compare text holding NUL, and a lone surrogate (`"\\ud800"` in JSON) parses in Python but
cannot be encoded in any answer, so one stored value used to turn every listing that includes it into a 500."""

from __future__ import annotations

import json

import pytest

from tests.fleet_server.conftest import Api, make_csr

LONE_SURROGATE = "\\ud800"  # as spelled inside a JSON document


def _raw(api: Api, method: str, path: str, body: str, key: bool = True):  # noqa: ANN202 - httpx.Response
    headers = {**(api.headers() if key else {}), "content-type": "application/json"}
    return api.client.request(method, path, content=body, headers=headers)


def _listings_work(api: Api) -> None:
    for path in ("/api/v1/devices", "/api/v1/tokens", "/api/v1/audit", "/api/v1/apikeys"):
        r = api.client.get(path, headers=api.headers())
        assert r.status_code == 200, (path, r.status_code)


@pytest.mark.parametrize("field", ["name", "hardware"])
def test_enrollment_text_that_cannot_be_stored_or_shown_is_422(api: Api, field: str) -> None:
    token = api.token(uses=3)
    csr = json.dumps(make_csr()[1])
    value = {"name": '"door\\u0000cam"', "hardware": '{"cpu": "x' + LONE_SURROGATE + '"}'}[field]
    body = f'{{"token": "{token}", "csr": {csr}, "{field}": {value}}}'
    r = _raw(api, "POST", "/api/v1/enroll", body, key=False)
    assert r.status_code == 422 and field in r.json()["detail"], r.text
    _listings_work(api)


def test_an_api_key_name_with_nul_is_422(api: Api) -> None:
    r = api.client.post("/api/v1/apikeys", json={"role": "viewer", "name": "a\u0000b"}, headers=api.headers())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "name"]
    _listings_work(api)


def test_token_tags_with_a_lone_surrogate_are_422(api: Api) -> None:
    r = _raw(api, "POST", "/api/v1/tokens", '{"tags": {"site": "x' + LONE_SURROGATE + '"}}')
    assert r.status_code == 422, r.text
    _listings_work(api)


def test_twin_properties_with_a_lone_surrogate_are_422(api: Api) -> None:
    device_id = api.enroll(api.token()).json()["device_id"]
    r = _raw(api, "PATCH", f"/api/v1/devices/{device_id}/twin", '{"properties": {"' + LONE_SURROGATE + '": 1}}')
    assert r.status_code == 422, r.text
    _listings_work(api)
    assert api.client.get(f"/api/v1/devices/{device_id}/twin", headers=api.headers()).status_code == 200


def test_audit_filters_with_nul_are_422(api: Api) -> None:
    r = api.client.get("/api/v1/audit", params={"action": "token.create\u0000"}, headers=api.headers())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "action"]


@pytest.mark.parametrize("suffix", ["", "/twin", "/telemetry"])
def test_a_device_id_that_cannot_exist_is_404_without_a_query(api: Api, suffix: str) -> None:
    r = api.client.get(f"/api/v1/devices/a%00b{suffix}", headers=api.headers())
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
    assert api.client.get(f"/api/v1/devices/a%00b{suffix}").status_code == 401  # the key is checked first
