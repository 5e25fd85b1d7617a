"""The commands API without a broker, on SQLite and PostgreSQL: who may send, what an offline device gets (409 or a
queue with an expiry), what is refused before anything is stored, and what the record and the audit log keep."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from fleet_server.db import Device
from edgefleet.protocol import CommandReply


@pytest.fixture()
def device_id(api) -> str:
    r = api.enroll(api.token())
    assert r.status_code == 200, r.text
    return r.json()["device_id"]


def _post(api, device_id: str, key: str | None = None, **body):
    return api.client.post(f"/api/v1/devices/{device_id}/commands", json={"name": "ping", **body},
                           headers=api.headers(key))


def _commands(api, device_id: str, key: str | None = None) -> list[dict]:
    r = api.client.get(f"/api/v1/devices/{device_id}/commands", headers=api.headers(key))
    assert r.status_code == 200, r.text
    return r.json()


def test_an_offline_device_gets_a_clear_409_unless_the_caller_queues_and_a_queued_command_expires(api, device_id):
    refused = _post(api, device_id)
    assert refused.status_code == 409 and refused.json()["error"] == "DeviceOffline"
    assert "offline" in refused.json()["detail"] and "offline=queue" in refused.json()["detail"]
    assert _commands(api, device_id) == []  # nothing stored for a refusal

    queued = _post(api, device_id, name="get_logs", args={"lines": 5}, offline="queue", expires_s=60)
    assert queued.status_code == 202, queued.text
    command = queued.json()
    assert command["state"] == "queued" and command["args"] == {"lines": 5} and command["sent_at"] is None
    assert command["caller"].startswith("apikey:")
    request_id = command["request_id"]
    shown = api.client.get(f"/api/v1/devices/{device_id}/commands/{request_id}", headers=api.headers()).json()
    assert shown == command

    dispatcher = api.fleet.commands
    assert dispatcher.tick(datetime.now(timezone.utc))["expired"] == 0
    assert dispatcher.tick(datetime.now(timezone.utc) + timedelta(seconds=61))["expired"] == 1
    expired = _commands(api, device_id)[0]
    assert expired["state"] == "expired" and "did not come online" in expired["error"]
    assert expired["finished_at"] is not None and expired["sent_at"] is None

    audit = api.client.get("/api/v1/audit", params={"action": "command.send"}, headers=api.headers()).json()
    assert [(e["target"], e["details"]["request_id"], e["details"]["name"]) for e in audit] == \
        [(device_id, request_id, "get_logs")]
    assert audit[0]["actor"] == command["caller"]


def test_a_viewer_reads_commands_but_may_not_send_one(api, device_id):
    viewer = api.key("viewer")
    refused = _post(api, device_id, key=viewer, offline="queue")
    assert refused.status_code == 403 and "needs the operator role" in refused.json()["detail"]
    operator = api.key("operator")
    assert _post(api, device_id, key=operator, offline="queue").status_code == 202
    assert [c["name"] for c in _commands(api, device_id, key=viewer)] == ["ping"]


BAD_REQUESTS = [
    ({"name": "Bad Name"}, "name"),
    ({"args": {"blob": "x" * 20_000}}, "args"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"offline": "maybe"}, "offline"),
    ({"expires_s": 0}, "expires_s"),
    ({"surprise": 1}, "surprise"),
]


def test_bad_requests_are_refused_before_anything_is_stored(api, device_id):
    for body, where in BAD_REQUESTS:
        r = _post(api, device_id, **{"offline": "queue", **body})
        assert r.status_code == 422 and where in r.json()["detail"], (body, r.text)
    assert _commands(api, device_id) == []


def test_unknown_and_decommissioned_devices(api, device_id):
    assert _post(api, "no-such-device").status_code == 404
    assert api.client.get("/api/v1/devices/no-such-device/commands", headers=api.headers()).status_code == 404
    assert api.client.get(f"/api/v1/devices/{device_id}/commands/abc", headers=api.headers()).status_code == 404
    assert api.client.delete(f"/api/v1/devices/{device_id}", headers=api.headers()).status_code == 200
    gone = _post(api, device_id, offline="queue")
    assert gone.status_code == 409 and "decommissioned" in gone.json()["detail"]


def _mark_online(api, device_id: str) -> None:
    with api.fleet.db.session() as session:
        session.get(Device, device_id).status = "online"


def test_an_online_device_without_a_broker_is_a_503_or_stays_queued_and_the_record_says_why(api, device_id):
    _mark_online(api, device_id)
    r = _post(api, device_id)
    assert r.status_code == 503 and "not sent" in r.json()["detail"]
    failed = _commands(api, device_id)[0]
    assert failed["state"] == "failed" and "broker was not reachable" in failed["error"]
    kept = _post(api, device_id, offline="queue")
    assert kept.status_code == 202 and kept.json()["state"] == "queued"
    assert api.fleet.commands.tick()["sent"] == 0  # still no broker: it stays queued for the next sweep
    assert _commands(api, device_id)[0]["state"] == "queued"


def test_replies_settle_a_sent_command_once_and_only_from_its_own_device(api, device_id):
    from fleet_server.services import commands

    _mark_online(api, device_id)
    with api.fleet.db.session() as session:
        row, online = commands.create(session, device_id, name="ping", args={}, caller="test", timeout_s=5,
                                      offline="fail", expires_s=60)
        request_id = row.id
        assert online and commands.mark_sent(session, request_id, datetime.now(timezone.utc))
    ok, again = CommandReply(ok=True, result={"pong": True}), CommandReply(ok=False, error="second copy")
    with api.fleet.db.session() as session:
        assert not commands.record_reply(session, "someone-else", request_id, ok)
        assert commands.record_reply(session, device_id, request_id, ok)
        assert not commands.record_reply(session, device_id, request_id, again)
    settled = _commands(api, device_id)[0]
    assert settled["state"] == "succeeded" and settled["reply"]["result"] == {"pong": True}
