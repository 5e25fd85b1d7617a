"""The monitoring API: telemetry at each resolution, alert rules per tag, alerts listed and acknowledged by
role, alerts surviving a server restart, and the per-device metrics on /metrics (gone once decommissioned)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from edgefleet.protocol import Status, Telemetry, TwinReported
from fleet_server.app import create_app
from fleet_server.settings import ServerSettings
from fleet_server.services import devices
from tests.fleet_server.conftest import Api
from tests.fleet_server.services.rollout_env import add_device

V1 = "/api/v1"
NOW = datetime.now(timezone.utc)
HOUR = (NOW - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def _store(api: Api, device_id: str, *, status: str = "online", **fields: object) -> None:
    with api.fleet.db.session() as s:
        devices.record_status(s, device_id, Status(state=status))
        devices.record_telemetry(s, device_id, Telemetry(device_id=device_id, **fields))


def _metrics(api: Api) -> dict[str, list]:
    text = api.client.get("/metrics").text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_telemetry_is_served_raw_or_in_buckets_with_the_step_it_used(api: Api) -> None:
    add_device(api.fleet.db, "cam-1", model=None)
    for seconds, fps in ((0, 10.0), (30, 20.0), (90, 40.0)):
        _store(api, "cam-1", ts=HOUR + timedelta(seconds=seconds), fps=fps, camera_state="streaming")
    api.fleet.telemetry_job.run(now=NOW)
    h = api.headers()

    latest = api.client.get(f"{V1}/devices/cam-1/telemetry", params={"limit": 1}, headers=h)
    assert latest.json()[0]["fps"] == 40.0 and latest.headers["X-Telemetry-Step"] == "raw"
    minutes = api.client.get(f"{V1}/devices/cam-1/telemetry", params={"step": "1m"}, headers=h).json()
    assert [(m["samples"], m["stats"]["fps"]["avg"]) for m in minutes] == [(1, 40.0), (2, 15.0)]
    picked = api.client.get(f"{V1}/devices/cam-1/telemetry", headers=h,
                            params={"since": (NOW - timedelta(hours=12)).isoformat()})
    assert picked.headers["X-Telemetry-Step"] == "1m"  # raw is kept a day, but 12 h is too long a span for it
    assert picked.json() == minutes
    hour = api.client.get(f"{V1}/devices/cam-1/telemetry", params={"step": "1h", "since": HOUR.isoformat()},
                          headers=h).json()
    assert hour[0]["stats"]["fps"] == {"avg": 70 / 3, "min": 10.0, "max": 40.0, "last": 40.0}

    for params in ({"step": "5m"}, {"since": "2026-01-01T00:00:00"},
                   {"since": NOW.isoformat(), "until": HOUR.isoformat()}):
        answer = api.client.get(f"{V1}/devices/cam-1/telemetry", params=params, headers=h)
        assert answer.status_code == 422, (params, answer.text)
    assert api.client.get(f"{V1}/devices/nope/telemetry", params={"step": "1h"}, headers=h).status_code == 404


def test_rules_and_alerts_by_role_and_across_a_restart(api: Api, settings: ServerSettings) -> None:
    viewer, operator = api.headers(api.key("viewer")), api.headers(api.key("operator"))
    add_device(api.fleet.db, "hot-1", {"site": "foundry"}, model=None)
    _store(api, "hot-1", temperature_c=70.0, camera_state="streaming", fps=10.0)
    layer = {"tag": "site=foundry", "rules": {"temperature_high": {"max_c": 60}}}
    assert api.client.put(f"{V1}/alert-rules", json=layer, headers=viewer).status_code == 403
    refused = api.client.put(f"{V1}/alert-rules", json={"rules": {"temperature_high": {"max_c": "hot"}}},
                             headers=operator)
    assert refused.status_code == 422 and "max_c" in refused.json()["detail"]
    for bad in ({"tag": "site=\x00", "rules": {}}, {"rules": {"fps_low": {"min_fps": float("nan")}}}):
        assert api.client.put(f"{V1}/alert-rules", content=json.dumps(bad), headers=operator).status_code == 422
    assert api.client.get(f"{V1}/alerts", params={"device_id": "\x00"}, headers=viewer).status_code == 422
    assert api.client.put(f"{V1}/alert-rules", json={"rules": {"fps_low": {"min_fps": "2.5"}}},
                          headers=operator).json()["overrides"][0]["rules"] == {"fps_low": {"min_fps": 2.5}}
    rules = api.client.put(f"{V1}/alert-rules", json=layer, headers=operator)
    assert rules.status_code == 200 and rules.json()["overrides"][1] | {"updated_at": 0, "updated_by": 0} == {
        **layer, "updated_at": 0, "updated_by": 0}
    assert api.client.get(f"{V1}/alert-rules", headers=viewer).json() == rules.json()

    api.fleet.alerts.tick(NOW)
    (alert,) = api.client.get(f"{V1}/alerts", params={"state": "firing"}, headers=viewer).json()
    assert (alert["rule"], alert["device_id"], alert["value"]) == ("temperature_high", "hot-1", 70.0)
    assert api.client.post(f"{V1}/alerts/{alert['id']}/ack", headers=viewer).status_code == 403
    acked = api.client.post(f"{V1}/alerts/{alert['id']}/ack", headers=operator)
    assert acked.status_code == 200 and acked.json()["acked_by"] and acked.json()["state"] == "firing"
    assert api.client.post(f"{V1}/alerts/{alert['id']}/ack", headers=operator).status_code == 409
    assert api.client.post(f"{V1}/alerts/99999/ack", headers=operator).status_code == 404
    assert api.client.get(f"{V1}/alerts", params={"state": "burning"}, headers=viewer).status_code == 422
    audit = api.client.get(f"{V1}/audit", params={"action": "alert.ack"}, headers=api.headers()).json()
    assert [entry["target"] for entry in audit] == [str(alert["id"])]

    api.client.__exit__(None, None, None)  # the server stops; a new one opens the same database
    with TestClient(create_app(settings, start_mqtt=False)) as client:
        again = Api(client)
        (kept,) = client.get(f"{V1}/alerts", headers=again.headers()).json()
        assert kept == acked.json()
        _store(again, "hot-1", temperature_c=50.0, camera_state="streaming", fps=10.0)
        (resolved,) = again.fleet.alerts.tick(NOW)
        assert (resolved.transition, resolved.alert["id"]) == ("resolved", alert["id"])
        assert client.get(f"{V1}/alerts", params={"state": "firing"}, headers=again.headers()).json() == []


def test_metrics_carry_each_active_device_and_fleet_totals(api: Api) -> None:
    add_device(api.fleet.db, "cam-1", model=None)
    add_device(api.fleet.db, "cam-2", model=None)
    _store(api, "cam-1", fps=12.5, latency_ms_p50=20.0, latency_ms_p95=45.0, frames_dropped=3, cpu_percent=55.0,
           memory_mb=120.0, temperature_c=61.0, model_name="det", model_version="2")
    _store(api, "cam-2", status="offline", fps=0.0)
    with api.fleet.db.session() as s:
        devices.record_reported(s, "cam-1", TwinReported(model={"name": "det", "version": "3", "sha256": "c" * 64}))
    m = _metrics(api)
    assert ("edgefleet_device_fps", {"device_id": "cam-1"}, 12.5) in [(x.name, x.labels, x.value)
                                                                     for x in m["edgefleet_device_fps"]]
    latency = {(x.labels["device_id"], x.labels["quantile"]): x.value for x in m["edgefleet_device_latency_ms"]}
    assert latency == {("cam-1", "0.5"): 20.0, ("cam-1", "0.95"): 45.0}
    online = {x.labels["device_id"]: x.value for x in m["edgefleet_device_online"]}
    assert online == {"cam-1": 1.0, "cam-2": 0.0}
    info = {x.labels["device_id"]: (x.labels["model"], x.labels["version"]) for x in m["edgefleet_device_model_info"]}
    assert info == {"cam-1": ("det", "3"), "cam-2": ("", "")}  # the reported twin wins over telemetry
    assert {x.labels["device_id"]: x.value for x in m["edgefleet_device_frames_dropped"]} == {"cam-1": 3.0,
                                                                                                "cam-2": 0.0}
    assert {x.labels["device_id"] for x in m["edgefleet_device_temperature_celsius"]} == {"cam-1"}
    assert {x.labels["state"]: x.value for x in m["edgefleet_devices"]} == {"online": 1.0, "offline": 1.0}

    with api.fleet.db.session() as s:
        devices.decommission(s, "cam-2", actor="test")
    m = _metrics(api)
    assert {x.labels["device_id"] for x in m["edgefleet_device_online"]} == {"cam-1"}
    assert {x.labels["device_id"] for x in m["edgefleet_device_fps"]} == {"cam-1"}
