from datetime import datetime, timezone

import pytest

from edgefleet.protocol import Status, Telemetry, TwinReported
from fleet_server.db import Database, Device, RevokedCert
from fleet_server.errors import Conflict, NotFound
from fleet_server.schemas import TwinPatch
from fleet_server.services import audit, devices, twin


def _device(db: Database, device_id: str = "cam-0001", tags: dict | None = None) -> None:
    with db.session() as s:
        s.add(Device(id=device_id, tags=tags or {}, enrolled_at=datetime.now(timezone.utc), cert_serial="abc123",
                     mqtt_password_hash="sha256:00", hardware={}))


def test_status_marks_online_and_the_last_will_offline(db: Database) -> None:
    _device(db)
    with db.session() as s:
        assert devices.record_status(s, "cam-0001", Status(state="online", agent_version="1.2"))
    with db.session() as s:
        d = s.get(Device, "cam-0001")
        assert d.status == "online" and d.agent_version == "1.2" and d.last_seen is not None
        devices.record_status(s, "cam-0001", Status(state="offline", reason="lost"))
    with db.session() as s:
        assert s.get(Device, "cam-0001").status == "offline" and devices.count_online(s) == 0


def test_messages_from_unknown_devices_store_nothing(db: Database) -> None:
    with db.session() as s:
        assert not devices.record_status(s, "ghost-0001", Status(state="online"))
        assert not devices.record_reported(s, "ghost-0001", TwinReported())
        assert not devices.record_telemetry(s, "ghost-0001", Telemetry(device_id="ghost-0001"))
    with db.session() as s:
        assert s.get(Device, "ghost-0001") is None


def test_telemetry_naming_another_device_is_ignored(db: Database) -> None:
    _device(db)
    with db.session() as s:
        assert not devices.record_telemetry(s, "cam-0001", Telemetry(device_id="cam-0002"))
        assert devices.record_telemetry(s, "cam-0001", Telemetry(device_id="cam-0001", fps=3.0))


def test_tag_filter_keeps_devices_with_every_given_tag(db: Database) -> None:
    _device(db, "cam-0001", {"site": "a", "floor": "1"})
    _device(db, "cam-0002", {"site": "a"})
    _device(db, "cam-0003", {"site": "b"})
    with db.session() as s:
        assert [d.id for d in devices.list_devices(s, tags={"site": "a"})] == ["cam-0001", "cam-0002"]
        assert [d.id for d in devices.list_devices(s, tags={"site": "a", "floor": "1"})] == ["cam-0001"]


def test_decommission_revokes_credentials_and_certificate_and_keeps_the_row(db: Database) -> None:
    _device(db)
    with db.session() as s:
        devices.decommission(s, "cam-0001", actor="tester")
    with db.session() as s:
        d = s.get(Device, "cam-0001")
        assert d.decommissioned_at is not None and d.mqtt_password_hash is None and d.status == "decommissioned"
        assert s.get(RevokedCert, "abc123").device_id == "cam-0001"
        assert devices.list_devices(s) == [] and len(devices.list_devices(s, include_decommissioned=True)) == 1
        assert audit.entries(s, action="device.decommission")[0].actor == "tester"
        # it says nothing any more
        assert not devices.record_status(s, "cam-0001", Status(state="online"))
    with db.session() as s, pytest.raises(Conflict):
        devices.decommission(s, "cam-0001", actor="tester")
    with db.session() as s, pytest.raises(Conflict, match="decommissioned"):
        twin.patch_twin(s, "cam-0001", TwinPatch(camera="usb:0"), actor="tester")


def test_unknown_devices_are_not_found(db: Database) -> None:
    with db.session() as s, pytest.raises(NotFound):
        devices.get_device(s, "nope-0001")


def test_twin_patches_are_stored_with_their_revision_and_audited(db: Database) -> None:
    _device(db)
    for _ in range(2):
        with db.session() as s:
            twin.patch_twin(s, "cam-0001", TwinPatch(properties={"x": 1}), actor="tester")
    with db.session() as s:
        d = s.get(Device, "cam-0001")
        assert d.desired_revision == 2 and d.desired["revision"] == 2
        assert [e.details["revision"] for e in audit.entries(s, action="twin.patch")] == [2, 1]


def test_concurrent_twin_patches_get_distinct_revisions(db: Database) -> None:
    import threading

    _device(db)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def patch(i: int) -> None:
        barrier.wait()
        try:
            with db.session() as s:
                twin.patch_twin(s, "cam-0001", TwinPatch(properties={f"k{i}": i}), actor="tester")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=patch, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with db.session() as s:
        d = s.get(Device, "cam-0001")
        assert d.desired_revision == 4 and d.desired["properties"] == {f"k{i}": i for i in range(4)}
        assert sorted(e.details["revision"] for e in audit.entries(s, action="twin.patch")) == [1, 2, 3, 4]


def test_a_replayed_old_retained_status_does_not_pretend_the_device_was_just_seen(db: Database) -> None:
    from datetime import timedelta

    _device(db)
    old = datetime.now(timezone.utc) - timedelta(hours=3)
    with db.session() as s:
        devices.record_status(s, "cam-0001", Status(state="online", ts=old))
    with db.session() as s:
        assert s.get(Device, "cam-0001").last_seen == old
        devices.record_status(s, "cam-0001", Status(state="online", ts=old - timedelta(hours=1)))
    with db.session() as s:
        assert s.get(Device, "cam-0001").last_seen == old  # never backwards
