"""API keys cannot lock the fleet out of itself, and their names always fit the audit log (SQLite and
PostgreSQL: the column limit is only enforced by PostgreSQL)."""

from __future__ import annotations

from tests.fleet_server.conftest import Api


def key_ids(api: Api) -> dict[str, int]:
    return {k["name"]: k["id"] for k in api.client.get("/api/v1/apikeys", headers=api.headers()).json()}


def test_the_last_admin_key_cannot_be_revoked_even_by_itself(api: Api) -> None:
    first = key_ids(api)["first admin"]
    r = api.client.delete(f"/api/v1/apikeys/{first}", headers=api.headers())
    assert r.status_code == 409 and "last active admin key" in r.json()["detail"]
    assert api.client.get("/api/v1/apikeys", headers=api.headers()).status_code == 200  # still works


def test_an_admin_key_can_go_once_another_admin_exists(api: Api) -> None:
    second = api.key("admin")
    first = key_ids(api)["first admin"]
    r = api.client.delete(f"/api/v1/apikeys/{first}", headers=api.headers(second))
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert api.client.get("/api/v1/apikeys", headers=api.headers(second)).status_code == 200


def test_a_key_with_the_longest_name_can_make_changes_that_are_audited(api: Api) -> None:
    r = api.client.post("/api/v1/apikeys", json={"role": "operator", "name": "n" * 64}, headers=api.headers())
    assert r.status_code == 201
    key = r.json()["key"]
    assert api.client.post("/api/v1/tokens", json={}, headers=api.headers(key)).status_code == 201
    actors = {e["actor"] for e in api.client.get("/api/v1/audit", headers=api.headers()).json()}
    assert any(a.endswith("(" + "n" * 64 + ")") for a in actors)


def test_a_longer_name_is_refused_with_a_clear_message(api: Api) -> None:
    r = api.client.post("/api/v1/apikeys", json={"role": "viewer", "name": "n" * 108}, headers=api.headers())
    assert r.status_code == 422 and "64" in str(r.json()["detail"])
