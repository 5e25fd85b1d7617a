"""Camera URLs carry credentials (rtsp://user:pass@host/...): the audit log never keeps the password, and
viewer keys see it masked wherever a camera spec shows up; operators and admins, who set them, see them whole."""

from __future__ import annotations

import pytest

from edgefleet.protocol import PipelineConfig, Telemetry, TwinReported, config_hash
from fleet_server.services import devices
from fleet_server.services.redaction import redact, redact_text
from tests.fleet_server.conftest import Api

CAMERA = "rtsp://admin:hunter2@192.0.2.10:554/stream1"
MASKED = "rtsp://admin:***@192.0.2.10:554/stream1"
OLD_CAMERA = CAMERA.replace("hunter2", "oldpass")  # the device still runs with the previous password


@pytest.fixture()
def device_with_camera(api: Api) -> str:
    """A device whose desired and reported twins, telemetry and hardware facts all name the camera URL."""
    enrolled = api.enroll(api.token(), hardware={"cameras": [CAMERA, "/dev/video0"]})
    assert enrolled.status_code == 200, enrolled.text
    device_id = enrolled.json()["device_id"]
    r = api.client.patch(f"/api/v1/devices/{device_id}/twin", json={"camera": CAMERA}, headers=api.headers())
    assert r.status_code == 200 and r.json()["desired"]["camera"] == CAMERA  # the operator who set it sees it
    with api.fleet.db.session() as session:
        devices.record_reported(session, device_id, TwinReported(
            desired_revision=1, camera=OLD_CAMERA, config_hash=config_hash(PipelineConfig()),
            last_error=f"cannot open {CAMERA}: timeout"))
        devices.record_telemetry(session, device_id, Telemetry(device_id=device_id, camera_id=CAMERA))
    return device_id


def _views(api: Api, device_id: str, key: str) -> str:
    """Everything a key can read about the device, as one text."""
    h = api.headers(key)
    parts = [api.client.get(path, headers=h) for path in (
        "/api/v1/devices", f"/api/v1/devices/{device_id}", f"/api/v1/devices/{device_id}/twin",
        f"/api/v1/devices/{device_id}/telemetry", "/api/v1/audit")]
    assert all(p.status_code == 200 for p in parts)
    return "\n".join(p.text for p in parts)


def test_a_viewer_sees_camera_passwords_masked_everywhere(api: Api, device_with_camera: str) -> None:
    seen = _views(api, device_with_camera, api.key("viewer"))
    assert "hunter2" not in seen and "oldpass" not in seen
    assert seen.count(MASKED) >= 7  # desired, reported, last_error, hardware (list and show), twin, telemetry
    twin = api.client.get(f"/api/v1/devices/{device_with_camera}/twin", headers=api.headers(api.key("viewer")))
    assert twin.json()["desired"]["camera"] == twin.json()["reported"]["camera"] == MASKED
    assert twin.json()["in_sync"] is False  # computed on the real values, whose passwords differ


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_operators_and_admins_see_them_whole_except_in_the_audit_log(api: Api, device_with_camera: str,
                                                                    role: str) -> None:
    key = api.key(role) if role == "operator" else api.admin_key
    h = api.headers(key)
    device = api.client.get(f"/api/v1/devices/{device_with_camera}", headers=h).json()
    assert device["desired"]["camera"] == CAMERA and device["reported"]["camera"] == OLD_CAMERA
    assert device["hardware"]["cameras"][0] == CAMERA
    telemetry = api.client.get(f"/api/v1/devices/{device_with_camera}/telemetry", headers=h).json()
    assert telemetry[0]["camera_id"] == CAMERA
    audit = api.client.get("/api/v1/audit", params={"action": "twin.patch"}, headers=h).json()
    assert audit[0]["details"]["patch"]["camera"] == MASKED


def test_the_audit_table_itself_never_holds_the_password(api: Api, device_with_camera: str) -> None:
    import sqlalchemy as sa

    from fleet_server.db.models import AuditEntry

    with api.fleet.db.session() as session:
        stored = [e.details for e in session.scalars(sa.select(AuditEntry))]
    assert "hunter2" not in str(stored) and MASKED in str(stored)


def test_masking_in_the_desired_view_does_not_change_what_the_device_gets(api: Api, device_with_camera: str) -> None:
    with api.fleet.db.session() as session:
        assert devices.get_device(session, device_with_camera).desired["camera"] == CAMERA


@pytest.mark.parametrize("text,masked", [
    (CAMERA, MASKED),
    ("rtsp://cam.local:554/s", "rtsp://cam.local:554/s"),
    ("rtsp://user@cam/s", "rtsp://user@cam/s"),
    ("rtsp://u:p@ss@cam/s", "rtsp://u:***@cam/s"),
    ("http://a:b@h and rtsp://c:d@h2/x", "http://a:***@h and rtsp://c:***@h2/x"),
    ("usb:0", "usb:0"),
    (MASKED, MASKED),
])
def test_redact_text(text: str, masked: str) -> None:
    assert redact_text(text) == masked


def test_redact_walks_nested_values_and_leaves_other_types() -> None:
    value = {"a": [CAMERA, {"b": CAMERA}], "n": 3, "none": None}
    assert redact(value) == {"a": [MASKED, {"b": MASKED}], "n": 3, "none": None}
    assert value["a"][0] == CAMERA  # a copy: the original is untouched
