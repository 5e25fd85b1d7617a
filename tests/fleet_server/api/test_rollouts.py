"""Rollouts over HTTP on SQLite and PostgreSQL: a real package in the registry, enrolled devices, the scheduler
ticked by hand (the app without MQTT runs none) and device reports written through the inventory's services."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.protocol import ModelRef, TwinReported
from fleet_server.rollout_scheduler import RolloutScheduler
from fleet_server.services import devices
from tests.fleet_server.api.test_models import MODELS, audit, upload
from tests.fleet_server.conftest import Api
from tests.fleet_server.model_packages import Packer

ROLLOUTS = "/api/v1/rollouts"


@pytest.fixture()
def packer(api: Api, tmp_path: Path) -> Packer:
    return Packer.for_server(api.fleet.settings.signing_key_path(), tmp_path / "work")


def _tick(api: Api) -> None:
    RolloutScheduler(api.fleet.db, api.fleet.publish_desired).tick()


def _report(api: Api, device_id: str, view: dict, ota: dict) -> None:
    ref = ModelRef(name=view["name"], version=view["version"], sha256=view["sha256"], size=view["size"])
    with api.fleet.db.session() as s:
        devices.record_reported(s, device_id, TwinReported(model=ref if ota["state"] == "installed" else None,
                                                           properties={"ota": {"sha256": view["sha256"], **ota}}))


def test_create_show_progress_and_finish(api: Api, packer: Packer) -> None:
    view = upload(api, packer.make()).json()
    ids = [api.enroll(api.token()).json()["device_id"] for _ in range(2)]
    r = api.client.post(ROLLOUTS, json={"model": "tiny:1.0.0", "canary_percent": 50, "waves": 1},
                        headers=api.headers(api.key("operator")))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["state"] == "running" and made["model"]["sha256"] == view["sha256"]
    assert [len(w["devices"]) for w in made["wave_list"]] == [1, 1] and made["progress"] == 0.0
    assert made["gates"]["max_p95_ms"] == 2.0  # 10 x the package's 0.2 ms benchmark
    _tick(api)
    canary = made["wave_list"][0]["devices"][0]["device_id"]
    twin = api.client.get(f"/api/v1/devices/{canary}/twin", headers=api.headers()).json()
    assert twin["desired"]["model"] == {k: view[k] for k in ("name", "version", "sha256", "size")}
    _report(api, canary, view, {"state": "downloading", "bytes": 10, "total": 40, "percent": 25.0})
    shown = api.client.get(f"{ROLLOUTS}/{made['id']}", headers=api.headers(api.key("viewer"))).json()
    assert shown["wave_list"][0]["devices"][0] | {"started_at": None} == {
        "device_id": canary, "state": "updating", "reason": None, "progress": 25.0,
        "previous_model": None, "started_at": None, "finished_at": None}
    r = api.client.delete(f"{MODELS}/tiny/1.0.0", headers=api.headers())
    assert r.status_code == 409 and f"rollout {made['id']}" in r.json()["detail"]
    for device_id in [canary] + [d for d in ids if d != canary]:  # the second starts once the canary passed
        _report(api, device_id, view, {"state": "installed", "bytes": 40, "total": 40, "percent": 100.0})
        _tick(api)
    shown = api.client.get(f"{ROLLOUTS}/{made['id']}", headers=api.headers()).json()
    assert shown["state"] == "succeeded" and shown["progress"] == 100.0
    assert [d["state"] for w in shown["wave_list"] for d in w["devices"]] == ["succeeded", "succeeded"]
    assert [r["id"] for r in api.client.get(ROLLOUTS, params={"state": "succeeded"},
                                            headers=api.headers()).json()] == [made["id"]]
    assert audit(api, "rollout.create")[0]["target"] == str(made["id"])


def test_pause_resume_abort_and_their_conflicts(api: Api, packer: Packer) -> None:
    upload(api, packer.make())
    operator = api.headers(api.key("operator"))
    rid = api.client.post(ROLLOUTS, json={"model": "tiny:1.0.0"}, headers=operator).json()["id"]
    assert api.client.post(f"{ROLLOUTS}/{rid}/resume", headers=operator).status_code == 409
    assert api.client.post(f"{ROLLOUTS}/{rid}/pause", headers=operator).json()["state"] == "paused"
    assert api.client.post(f"{ROLLOUTS}/{rid}/pause", headers=api.headers(api.key("viewer"))).status_code == 403
    assert api.client.post(f"{ROLLOUTS}/{rid}/resume", headers=operator).json()["state"] == "running"
    assert api.client.post(f"{ROLLOUTS}/{rid}/abort", headers=operator).json()["state"] == "aborted"
    r = api.client.post(f"{ROLLOUTS}/{rid}/abort", headers=operator)
    assert r.status_code == 409 and r.json()["error"] == "Conflict" and "aborted" in r.json()["detail"]
    assert api.client.delete(f"{MODELS}/tiny/1.0.0", headers=api.headers()).status_code == 200


def test_not_deployable_needs_an_admin_force_and_bad_requests_are_refused(api: Api, packer: Packer) -> None:
    upload(api, packer.make(flags=["int8 accuracy delta past the gate"]))
    operator = api.headers(api.key("operator"))
    r = api.client.post(ROLLOUTS, json={"model": "tiny:1.0.0"}, headers=operator)
    assert r.status_code == 409 and "not deployable" in r.json()["detail"]
    assert api.client.post(ROLLOUTS, json={"model": "tiny:1.0.0", "force": True}, headers=operator).status_code == 403
    r = api.client.post(ROLLOUTS, json={"model": "tiny:1.0.0", "force": True}, headers=api.headers())
    assert r.status_code == 201 and r.json()["forced"] is True
    assert audit(api, "rollout.force")[0]["details"]["rollout"] == r.json()["id"]
    for body in ({"model": "tiny"}, {"model": "tiny:1.0.0", "target": "rack=4"},
                 {"model": "tiny:1.0.0", "window_start_hour": 3}, {"model": "tiny:1.0.0", "canary_percent": 0}):
        r = api.client.post(ROLLOUTS, json=body, headers=operator)
        assert r.status_code == 422 and r.json()["errors"], body
    assert api.client.post(ROLLOUTS, json={"model": "nope:1"}, headers=operator).status_code == 404
    assert api.client.get(f"{ROLLOUTS}/999", headers=operator).status_code == 404


def test_a_shadow_evaluation_is_asked_of_each_device_and_bad_values_are_refused(api: Api, packer: Packer) -> None:
    view = upload(api, packer.make()).json()
    device_id = api.enroll(api.token()).json()["device_id"]
    operator = api.headers(api.key("operator"))
    r = api.client.post(ROLLOUTS, json={"model": "tiny:1.0.0", "shadow_s": 30, "min_agreement": 0.9},
                        headers=operator)
    assert r.status_code == 201 and r.json()["shadow"] == {"window_s": 30.0, "min_agreement": 0.9}, r.text
    _tick(api)
    twin = api.client.get(f"/api/v1/devices/{device_id}/twin", headers=api.headers()).json()
    assert twin["desired"]["properties"]["shadow"] == {"sha256": view["sha256"], "window_s": 30.0,
                                                       "min_agreement": 0.9}
    for body, why in (({"min_agreement": 0.9}, "needs a shadow evaluation"), ({"shadow_s": -1}, "shadow_s"),
                      ({"shadow_s": 30, "min_agreement": 2}, "min_agreement"),
                      ({"shadow_s": 7200}, "shadow_s"), ({"shadow_s": "soon"}, "shadow_s")):
        r = api.client.post(ROLLOUTS, json={"model": "tiny:1.0.0", **body}, headers=operator)
        assert r.status_code == 422 and why in r.text, (body, r.text)
    plain = api.client.post(ROLLOUTS, json={"model": "tiny:1.0.0", "target": "tag=x=y"}, headers=operator)
    assert plain.status_code == 201 and plain.json()["shadow"] is None
