from edgefleet.protocol import ModelRef, Status, TwinReported, config_hash
from fleet_server.ingest import Ingest
from tests.fleet_server.conftest import Api


def _enroll(api: Api, **token: object) -> str:
    return api.enroll(api.token(**token)).json()["device_id"]


def test_devices_can_be_filtered_by_tag(api: Api) -> None:
    a = _enroll(api, tags={"site": "a"})
    _enroll(api, tags={"site": "b"})
    r = api.client.get("/api/v1/devices", params={"tag": "site=a"}, headers=api.headers())
    assert [d["id"] for d in r.json()] == [a]
    assert api.client.get("/api/v1/devices", params={"tag": "nonsense"}, headers=api.headers()).status_code == 422


def test_unknown_device_is_404(api: Api) -> None:
    assert api.client.get("/api/v1/devices/nope-0001", headers=api.headers()).status_code == 404
    r = api.client.patch("/api/v1/devices/nope-0001/twin", json={"camera": "x"}, headers=api.headers())
    assert r.status_code == 404


def test_twin_patch_without_a_broker_is_stored_bumped_and_reported_unpublished(api: Api) -> None:
    device_id = _enroll(api)
    model = {"name": "digits", "version": "1", "sha256": "c" * 64}
    r = api.client.patch(f"/api/v1/devices/{device_id}/twin",
                         json={"model": model, "pipeline": {"score_threshold": 0.8}}, headers=api.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["desired_revision"] == 1 and body["published"] is False and body["in_sync"] is False
    assert body["desired"]["model"]["sha256"] == "c" * 64 and body["desired"]["pipeline"]["score_threshold"] == 0.8
    r = api.client.patch(f"/api/v1/devices/{device_id}/twin", json={"pipeline": {"score_threshold": 3}},
                         headers=api.headers())
    assert r.status_code == 422 and "score_threshold" in r.json()["detail"]
    assert api.client.get(f"/api/v1/devices/{device_id}/twin", headers=api.headers()).json()["desired_revision"] == 1
    r = api.client.patch(f"/api/v1/devices/{device_id}/twin", json={"bogus": 1}, headers=api.headers())
    assert r.status_code == 422


def test_reported_state_from_the_bridge_shows_up_and_in_sync_follows_it(api: Api) -> None:
    device_id = _enroll(api)
    desired = api.client.patch(f"/api/v1/devices/{device_id}/twin",
                               json={"model": {"name": "m", "version": "1", "sha256": "d" * 64}, "camera": "usb:0"},
                               headers=api.headers()).json()["desired"]
    ingest = Ingest(api.fleet.db, api.fleet.metrics)  # what the MQTT bridge calls
    ingest.on_status(device_id, Status(state="online", agent_version="0.1.0"))
    from edgefleet.protocol import PipelineConfig

    ingest.on_reported(device_id, TwinReported(desired_revision=desired["revision"], camera="usb:0",
                                               model=ModelRef(name="m", version="1", sha256="d" * 64),
                                               config_hash=config_hash(PipelineConfig(**desired["pipeline"]))))
    device = api.client.get(f"/api/v1/devices/{device_id}", headers=api.headers()).json()
    assert device["online"] and device["agent_version"] == "0.1.0" and device["in_sync"] is True
    assert device["reported"]["camera"] == "usb:0" and device["last_seen"]
    ingest.on_status(device_id, Status(state="offline"))
    assert api.client.get(f"/api/v1/devices/{device_id}", headers=api.headers()).json()["online"] is False
    metrics = api.client.get("/metrics").text
    assert 'edgefleet_mqtt_messages_total{kind="status"} 2.0' in metrics


def test_decommission_keeps_the_device_listed_as_decommissioned_and_revokes_its_cert(api: Api) -> None:
    from cryptography import x509

    device_id = _enroll(api)
    r = api.client.delete(f"/api/v1/devices/{device_id}", headers=api.headers())
    assert r.status_code == 200 and r.json()["status"] == "decommissioned"
    assert api.client.delete(f"/api/v1/devices/{device_id}", headers=api.headers()).status_code == 409
    assert api.client.get("/api/v1/devices", headers=api.headers()).json() == []
    listed = api.client.get("/api/v1/devices", params={"include_decommissioned": True}, headers=api.headers()).json()
    assert [d["id"] for d in listed] == [device_id]
    crl = x509.load_pem_x509_crl(api.fleet.ca.crl_path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(r.json()["cert_serial"], 16)) is not None
    assert device_id not in dict(api.fleet.broker_logins())  # the embedded broker's next users file drops it
    r = api.client.patch(f"/api/v1/devices/{device_id}/twin", json={"camera": "x"}, headers=api.headers())
    assert r.status_code == 409


def test_the_broker_login_verifies_the_issued_password_only(api: Api) -> None:
    import bcrypt

    body = api.enroll(api.token()).json()
    hashed = dict(api.fleet.broker_logins())[body["mqtt_username"]].encode()
    assert bcrypt.checkpw(body["mqtt_password"].encode(), hashed)
    assert not bcrypt.checkpw((body["mqtt_password"] + "x").encode(), hashed)
