from tests.fleet_server.conftest import Api


def test_every_change_lands_in_the_audit_log_with_who_did_it(api: Api) -> None:
    operator = api.key("operator")
    r = api.client.post("/api/v1/tokens", json={"tags": {"k": "v"}}, headers=api.headers(operator))
    token = r.json()["token"]
    device_id = api.enroll(token).json()["device_id"]
    api.client.patch(f"/api/v1/devices/{device_id}/twin", json={"properties": {"a": 1}}, headers=api.headers(operator))
    api.client.delete(f"/api/v1/devices/{device_id}", headers=api.headers(operator))
    entries = api.client.get("/api/v1/audit", headers=api.headers()).json()
    actions = [e["action"] for e in entries]
    assert actions == ["device.decommission", "twin.patch", "device.enroll", "token.create", "apikey.create",
                       "apikey.create"]
    prefix = operator.split(".")[0].removeprefix("efk_")
    assert all(prefix in e["actor"] for e in entries[:2] + entries[3:4])
    assert entries[2]["actor"] == f"token:{r.json()['id']}" and entries[2]["target"] == device_id
    only = api.client.get("/api/v1/audit", params={"action": "twin.patch"}, headers=api.headers()).json()
    assert len(only) == 1 and only[0]["details"]["patch"] == {"properties": {"a": 1}}


def test_refused_requests_leave_no_audit_entry(api: Api) -> None:
    before = len(api.client.get("/api/v1/audit", headers=api.headers()).json())
    api.enroll("eft_0123456789ab." + "A" * 43)
    api.client.post("/api/v1/tokens", json={}, headers=api.headers(api.key("viewer")))
    after = api.client.get("/api/v1/audit", headers=api.headers()).json()
    assert len(after) == before + 1  # only the viewer key's creation


def test_health_metrics_docs_and_dashboard_answer(api: Api) -> None:
    assert api.client.get("/healthz").json()["database"] is True
    assert "edgefleet_devices_online" in api.client.get("/metrics").text
    assert api.client.get("/docs").status_code == 200
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/enroll", "/api/v1/devices/{device_id}/twin", "/api/v1/audit"} <= set(paths)
    assert "edgefleet" in api.client.get("/").text
