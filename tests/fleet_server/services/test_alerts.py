"""Every alert rule fires and resolves, judged at explicit times over what the server stored (the same service
calls the MQTT ingest makes); transitions reach `Fleet.events` subscribers; rule layers per tag apply."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from edgefleet.protocol import Status, Telemetry, TwinReported
from fleet_server.alert_evaluator import ADVISORY_KEY, AlertEvaluator
from fleet_server.db import Database
from fleet_server.db.models import Rollout
from fleet_server.errors import Conflict, InvalidInput
from fleet_server.events import EventHub, HubEvent
from fleet_server.services import alert_rules, alerts, devices
from tests.fleet_server.services.rollout_env import add_device, add_package, create

T0 = datetime.now(timezone.utc)


class Judge:
    """The evaluator plus what its subscribers heard."""

    def __init__(self, db: Database) -> None:
        self.db, self.events = db, EventHub()
        self.heard: list[HubEvent] = []
        self.events.listen(self.heard.append)
        self.evaluator = AlertEvaluator(db, self.events)

    def tick(self, seconds: float = 1) -> set[tuple[str, str, str]]:
        """(transition, rule, subject) of one evaluation at T0 + seconds."""
        return {(t.transition, t.alert["rule"], t.alert["subject"])
                for t in self.evaluator.tick(T0 + timedelta(seconds=seconds))}

    def firing(self) -> set[tuple[str, str]]:
        with self.db.session() as s:
            return {(a.rule, a.subject) for a in alerts.list_alerts(s, state="firing")}


def _snap(db: Database, device_id: str, *, ts: datetime | None = None, **fields: Any) -> None:
    values = {"camera_state": "streaming", "fps": 10.0, "temperature_c": 50.0, **fields}
    with db.session() as s:
        assert devices.record_telemetry(s, device_id, Telemetry(device_id=device_id, ts=ts or T0, **values))


def _status(db: Database, device_id: str, state: str) -> None:
    with db.session() as s:
        assert devices.record_status(s, device_id, Status(state=state))


def _update(db: Database, device_id: str, state: str) -> None:
    update = {"sha256": "b" * 64, "state": state, "reason": "health check: 3 of 10 frames failed"}
    with db.session() as s:
        assert devices.record_reported(s, device_id, TwinReported(properties={"update": update}))


def _last_seen(db: Database, device_id: str) -> datetime:
    with db.session() as s:
        return devices.get_device(s, device_id).last_seen


def _layer(db: Database, tag: str | None, rules: dict[str, dict[str, Any]]) -> None:
    with db.session() as s:
        alert_rules.put_layer(s, tag, rules, actor="test")


def test_each_device_rule_fires_while_its_condition_holds_and_resolves_after(db: Database) -> None:
    add_device(db, "cam-1", {"site": "lab"}, model=None)
    judge = Judge(db)
    assert judge.tick() == set()  # enrolled, never seen: not "offline"
    _status(db, "cam-1", "online")
    _snap(db, "cam-1")
    assert judge.tick() == set()

    _snap(db, "cam-1", camera_state="waiting_for_device", fps=0.0)
    assert judge.tick() == {("firing", "camera_disconnected", "cam-1")}  # not also fps: the camera is the cause
    _snap(db, "cam-1", fps=0.5, temperature_c=91.0)
    assert judge.tick() == {("resolved", "camera_disconnected", "cam-1"), ("firing", "fps_low", "cam-1"),
                            ("firing", "temperature_high", "cam-1")}
    assert judge.tick() == set()  # still firing: no new transition, no second alert

    _status(db, "cam-1", "offline")  # the Last Will
    assert judge.tick() == {("firing", "device_offline", "cam-1")}
    assert ("temperature_high", "cam-1") in judge.firing()  # an offline device's old snapshot decides nothing
    _status(db, "cam-1", "online")
    _snap(db, "cam-1")
    assert judge.tick() == {("resolved", "device_offline", "cam-1"), ("resolved", "fps_low", "cam-1"),
                            ("resolved", "temperature_high", "cam-1")}

    silent_since = (_last_seen(db, "cam-1") - T0).total_seconds()
    assert judge.tick(silent_since + 29) == set()
    assert judge.tick(silent_since + 31) == {("firing", "device_offline", "cam-1")}  # 3 periods of the default 10 s
    assert judge.tick(silent_since + 5) == {("resolved", "device_offline", "cam-1")}

    _update(db, "cam-1", "rolled_back")
    assert judge.tick() == {("firing", "update_failed", "cam-1")}
    _update(db, "cam-1", "succeeded")
    assert judge.tick() == {("resolved", "update_failed", "cam-1")}

    _layer(db, "site=lab", {"outbox_dropping": {"window_s": 5}})
    _snap(db, "cam-1", ts=T0 - timedelta(seconds=3), outbox_dropped=0, uptime_s=97.0)
    _snap(db, "cam-1", outbox_dropped=5, uptime_s=100.0)
    assert judge.tick() == {("firing", "outbox_dropping", "cam-1")}
    assert judge.tick(10) == {("resolved", "outbox_dropping", "cam-1")}  # not moved within the window since
    assert judge.firing() == set()

    _update(db, "cam-1", "failed")
    assert judge.tick(10) == {("firing", "update_failed", "cam-1")}
    with db.session() as s:
        devices.decommission(s, "cam-1", actor="test")
    assert judge.tick(10) == {("resolved", "update_failed", "cam-1")}
    heard = [(e.kind, e.data["transition"], e.data["rule"]) for e in judge.heard]
    assert heard[:4] == [("alert", "firing", "camera_disconnected"), ("alert", "resolved", "camera_disconnected"),
                         ("alert", "firing", "fps_low"), ("alert", "firing", "temperature_high")]
    assert len(heard) == 16 and all(e.data["device_id"] == "cam-1" for e in judge.heard)
    assert judge.heard[-1].data["details"]["resolved_because"] == "the device was decommissioned"


def test_a_halted_rollout_fires_until_a_later_rollout_to_its_target_is_created(db: Database) -> None:
    add_device(db, "cam-1", {"site": "lab"})
    add_package(db)
    first = create(db, target="tag=site=lab")
    judge = Judge(db)
    with db.session() as s:
        halted = s.get(Rollout, first)
        halted.state, halted.reason = "halted", "canary: 1 of 1 failed"
    assert judge.tick() == {("firing", "rollout_halted", f"rollout:{first}")}
    with db.session() as s:
        (alert,) = alerts.list_alerts(s, state="firing")
        assert "canary: 1 of 1 failed" in alert.message and alert.device_id is None
    create(db, target="tag=site=lab")
    assert judge.tick() == {("resolved", "rollout_halted", f"rollout:{first}")}


def test_rule_layers_apply_per_tag_and_fleet_wide(db: Database) -> None:
    for device_id, tags in (("hot-1", {"site": "foundry"}), ("cool-1", {"site": "office"})):
        add_device(db, device_id, tags, model=None)
        _status(db, device_id, "online")
        _snap(db, device_id, temperature_c=70.0, fps=2.0)
    judge = Judge(db)
    _layer(db, "site=foundry", {"temperature_high": {"max_c": 60}})
    _layer(db, None, {"fps_low": {"min_fps": 5}})
    assert judge.tick() == {("firing", "temperature_high", "hot-1"), ("firing", "fps_low", "hot-1"),
                            ("firing", "fps_low", "cool-1")}
    _layer(db, "site=foundry", {"fps_low": {"enabled": False}})  # replaces the layer: max_c back to 85
    assert judge.tick() == {("resolved", "temperature_high", "hot-1"), ("resolved", "fps_low", "hot-1")}
    with db.session() as s:
        view = alert_rules.view(s)
    assert view["defaults"]["fps_low"] == {"enabled": True, "min_fps": 5.0}
    assert view["builtin"]["fps_low"]["min_fps"] == 1.0
    assert [o["tag"] for o in view["overrides"]] == [None, "site=foundry"]

    for tag, rules, match in ((None, {"nope": {}}, "unknown alert rule"),
                              (None, {"fps_low": {"min_fps": -1}}, "min_fps"),
                              (None, {"fps_low": {"threshold": 3}}, "threshold"),
                              ("site", {"fps_low": {}}, "key=value")):
        with pytest.raises(InvalidInput, match=match):
            _layer(db, tag, rules)
    with db.session() as s:
        assert alert_rules.view(s)["overrides"] == view["overrides"]  # refused: nothing changed


def test_acknowledging_keeps_the_alert_firing_once_and_is_audited(db: Database) -> None:
    add_device(db, "cam-1", model=None)
    _status(db, "cam-1", "offline")
    judge = Judge(db)
    judge.tick()
    with db.session() as s:
        (alert,) = alerts.list_alerts(s)
        done = alerts.acknowledge(s, alert.id, actor="apikey:ops", now=T0)
    assert done.transition == "acknowledged" and done.alert["state"] == "firing"
    with db.session() as s, pytest.raises(Conflict, match="already acknowledged by apikey:ops"):
        alerts.acknowledge(s, alert.id, actor="apikey:other", now=T0)
    with db.session() as s:
        assert [a.id for a in alerts.list_alerts(s, acked=True)] == [alert.id]
        assert alerts.list_alerts(s, acked=False) == []


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_replicas_sharing_a_postgres_database_take_turns_evaluating(db: Database) -> None:
    add_device(db, "cam-1", model=None)
    _status(db, "cam-1", "offline")
    judge = Judge(db)
    with db.engine.connect() as other_replica:
        other_replica.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
        assert judge.tick() == set() and judge.firing() == set()  # the other one is evaluating: this one waits
        other_replica.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
    assert judge.tick() == {("firing", "device_offline", "cam-1")}
