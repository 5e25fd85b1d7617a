"""Rollouts on SQLite and PostgreSQL, ticked by hand (`RolloutScheduler.tick`, the thread's one step) with
device states written through the inventory's real services."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from fleet_server.db import Database, Device
from fleet_server.errors import Conflict, Forbidden
from fleet_server.rollout_scheduler import RolloutScheduler
from fleet_server.services import audit, rollouts
from fleet_server.services.models import users_of
from fleet_server.services.rollouts import split_waves
from tests.fleet_server.services.rollout_env import (NEW, OLD, Recorder, add_device, add_package, create,
                                                     desired_model, report, rollout_state, scheduler, states,
                                                     telemetry, waves)


def test_waves_split_a_canary_of_at_least_one_then_equal_waves() -> None:
    assert split_waves(10, 10, 3) == [0] + [1] * 3 + [2] * 3 + [3] * 3
    assert split_waves(3, 1, 3) == [0, 1, 2]
    assert split_waves(1, 10, 3) == [0]
    assert split_waves(0, 10, 3) == []


def _finish_wave(db: Database, sched: RolloutScheduler, rollout_id: int, device_ids: list[str]) -> None:
    for device_id in device_ids:
        report(db, device_id)
    sched.tick()


def test_canary_first_then_each_wave_after_the_last_passed(db: Database) -> None:
    add_package(db)
    ids = [f"cam-{i:02d}" for i in range(7)]
    for device_id in ids:
        add_device(db, device_id)
    rid = create(db, canary_percent=10, waves=3)
    sched, sent = scheduler(db)
    plan = waves(db, rid)
    by_wave = {w: sorted(d for d, dw in plan.items() if dw == w) for w in range(4)}
    assert [len(by_wave[w]) for w in range(4)] == [1, 2, 2, 2]
    sched.tick()
    assert [d for d, s in states(db, rid).items() if s == "updating"] == by_wave[0]
    assert desired_model(db, by_wave[0][0]) == NEW and sent.sent == by_wave[0]
    assert all(desired_model(db, d) == OLD for d in by_wave[1])  # the next wave waits for the canary
    for wave in range(4):
        assert rollout_state(db, rid)[:2] == ("running", wave)
        report(db, by_wave[wave][0], ota_state="downloading")  # still on its way: the wave waits
        sched.tick()
        assert rollout_state(db, rid)[1] == wave
        _finish_wave(db, sched, rid, by_wave[wave])
        assert all(states(db, rid)[d] == "succeeded" for d in by_wave[wave])  # and the next wave started
    assert rollout_state(db, rid)[0] == "succeeded"
    assert sorted(sent.sent) == ids and all(desired_model(db, d) == NEW for d in ids)


def test_a_failing_canary_halts_and_rolls_the_started_devices_back(db: Database) -> None:
    add_package(db)
    for i in range(4):
        add_device(db, f"cam-{i}")
    rid = create(db, canary_percent=50, waves=1, max_failure_percent=0)
    sched, sent = scheduler(db)
    sched.tick()
    canary = sorted(d for d, s in states(db, rid).items() if s == "updating")
    assert len(canary) == 2
    report(db, canary[0])
    report(db, canary[1], model=OLD, ota_state="failed", error="sha256 mismatch")
    sched.tick()
    state, wave, reason = rollout_state(db, rid)
    assert state == "halted" and wave == 0 and "canary: 1 of 2" in reason
    assert states(db, rid) == {canary[0]: "rolled_back", canary[1]: "failed",
                               **{d: "pending" for d in states(db, rid) if d not in canary}}
    assert all(desired_model(db, f"cam-{i}") == OLD for i in range(4))
    with db.session() as s:
        assert {rd.reason for rd in rollouts.devices_of(s, rid) if rd.state == "pending"} == \
            {"not started: the rollout halted"}
    assert sent.sent.count(canary[0]) == 2 and sent.sent.count(canary[1]) == 2  # switched, then set back
    with db.session() as s:
        assert audit.entries(s, action="rollout.halt")[0].target == str(rid)
        assert users_of(s, NEW.sha256) == []  # a halted rollout no longer holds the package


def test_a_device_outside_the_gates_fails(db: Database) -> None:
    add_package(db, benchmark={"onnxruntime": {"CPU": 2.0}})  # default p95 gate: 10 x 2 ms
    add_device(db, "cam-0")
    add_device(db, "cam-1")
    rid = create(db, canary_percent=100, waves=1, min_fps=5)
    sched, _ = scheduler(db)
    sched.tick()
    telemetry(db, "cam-0", fps=9.0, p95=35.0)
    telemetry(db, "cam-1", fps=2.0, p95=10.0)
    report(db, "cam-0")
    report(db, "cam-1")
    sched.tick()
    with db.session() as s:
        reasons = {rd.device_id: (rd.state, rd.reason) for rd in rollouts.devices_of(s, rid)}
    assert reasons["cam-0"][0] == "failed" and "p95 latency 35 ms over the gate 20 ms" in reasons["cam-0"][1]
    assert reasons["cam-1"][0] == "failed" and "fps 2 below the gate 5" in reasons["cam-1"][1]


def test_an_error_naming_the_model_fails_the_device(db: Database) -> None:
    add_package(db)
    add_device(db, "cam-0")
    rid = create(db, canary_percent=100, waves=1, rollback_on_halt=False)
    sched, _ = scheduler(db)
    sched.tick()
    report(db, "cam-0", model=OLD, ota_state=None, last_error="health check of det 2 failed: no output")
    sched.tick()
    assert states(db, rid) == {"cam-0": "failed"} and rollout_state(db, rid)[0] == "halted"
    assert desired_model(db, "cam-0") == NEW  # no rollback asked for


def test_a_model_rolled_back_by_its_health_check_fails_the_device_with_the_reason(db: Database) -> None:
    add_package(db)
    add_device(db, "cam-0")
    rid = create(db, canary_percent=100, waves=1)
    sched, _ = scheduler(db)
    sched.tick()
    why = "model det 2 failed its health check: sample latency 9.0 ms over the budget of 1 ms"
    # installed, switched to, checked and rolled back; last_error has since been cleared by a later change
    report(db, "cam-0", model=OLD, update={"sha256": NEW.sha256, "state": "rolled_back", "reason": why})
    sched.tick()
    with db.session() as s:
        (rd,) = rollouts.devices_of(s, rid)
    assert (rd.state, rd.reason) == ("failed", f"update rolled back on the device: {why}; model set back after the halt")
    assert rollout_state(db, rid)[0] == "halted" and desired_model(db, "cam-0") == OLD


def test_pause_starts_nothing_resume_continues_abort_ends(db: Database) -> None:
    add_package(db)
    for i in range(3):
        add_device(db, f"cam-{i}")
    rid = create(db, canary_percent=1, waves=2)
    sched, sent = scheduler(db)
    with db.session() as s:
        rollouts.change_state(s, rid, "pause", actor="op")
    sched.tick()
    assert set(states(db, rid).values()) == {"pending"} and sent.sent == []
    with db.session() as s:
        with pytest.raises(Conflict, match="paused; it cannot pause"):
            rollouts.change_state(s, rid, "pause", actor="op")
        rollouts.change_state(s, rid, "resume", actor="op")
    sched.tick()
    assert len(sent.sent) == 1
    with db.session() as s:
        rollouts.change_state(s, rid, "abort", actor="op")
    report(db, sent.sent[0])
    sched.tick()
    assert rollout_state(db, rid)[0] == "aborted" and len(sent.sent) == 1
    assert sorted(states(db, rid).values()) == ["pending", "pending", "updating"]
    with db.session() as s:
        with pytest.raises(Conflict, match="aborted; it cannot resume"):
            rollouts.change_state(s, rid, "resume", actor="op")
        assert [e.action for e in audit.entries(s) if e.action.startswith("rollout.")][:3] == \
            ["rollout.abort", "rollout.resume", "rollout.pause"]


def test_a_device_enrolled_or_retagged_after_the_start_joins(db: Database) -> None:
    add_package(db)
    add_device(db, "cam-0", {"site": "x"})
    add_device(db, "cam-1", {"site": "y"})
    rid = create(db, target="tag=site=x", canary_percent=100, waves=1)
    sched, sent = scheduler(db)
    sched.tick()
    assert states(db, rid) == {"cam-0": "updating"}
    add_device(db, "cam-2", {"site": "x"})
    with db.session() as s:
        s.get(Device, "cam-1").tags = {"site": "x"}
    sched.tick()
    assert states(db, rid) == {"cam-0": "updating", "cam-1": "updating", "cam-2": "updating"}
    for device_id in ("cam-0", "cam-1", "cam-2"):
        report(db, device_id)
    sched.tick()
    assert rollout_state(db, rid)[0] == "succeeded" and sorted(sent.sent) == ["cam-0", "cam-1", "cam-2"]


def test_the_maintenance_window_defers_devices_outside_it(db: Database) -> None:
    add_package(db)
    add_device(db, "cam-utc")
    add_device(db, "cam-tokyo", {"tz": "Asia/Tokyo"})  # UTC+9, no daylight saving
    now = datetime.now(timezone.utc)
    rid = create(db, canary_percent=100, waves=1, window_start_hour=now.hour, window_end_hour=(now.hour + 1) % 24)
    sched, sent = scheduler(db)
    sched.tick(now + timedelta(hours=2))
    assert set(states(db, rid).values()) == {"pending"} and sent.sent == []
    with db.session() as s:
        assert {rd.reason for rd in rollouts.devices_of(s, rid)} == {"waiting for the maintenance window"}
    sched.tick(now)
    assert states(db, rid) == {"cam-utc": "updating", "cam-tokyo": "pending"}
    sched.tick(now - timedelta(hours=9))  # when Tokyo's clock shows this hour
    assert states(db, rid)["cam-tokyo"] == "updating"


def test_a_device_not_done_within_the_wave_timeout_times_out(db: Database) -> None:
    add_package(db)
    add_device(db, "cam-0")
    rid = create(db, canary_percent=100, waves=1, wave_timeout_s=600, max_failure_percent=0)
    sched, _ = scheduler(db)
    start = datetime.now(timezone.utc)
    sched.tick(start)
    report(db, "cam-0", ota_state="downloading")
    sched.tick(start + timedelta(seconds=599))
    assert states(db, rid) == {"cam-0": "updating"}
    sched.tick(start + timedelta(seconds=601))
    assert states(db, rid) == {"cam-0": "timed_out"} and rollout_state(db, rid)[0] == "halted"
    assert desired_model(db, "cam-0") == OLD


def test_a_new_scheduler_on_the_same_database_continues(db: Database, db_url: str) -> None:
    add_package(db)
    for i in range(3):
        add_device(db, f"cam-{i}")
    rid = create(db, canary_percent=1, waves=1)
    first, _ = scheduler(db)
    first.tick()
    canary = next(d for d, s in states(db, rid).items() if s == "updating")
    report(db, canary)
    restarted = Database(db_url)  # what a restarted server opens
    try:
        sent = Recorder()
        second = RolloutScheduler(restarted, sent)
        second.tick()
        assert states(db, rid)[canary] == "succeeded" and rollout_state(db, rid)[1] == 1
        second.tick()
        assert sorted(states(db, rid).values()) == ["succeeded", "updating", "updating"]
        assert sorted(sent.sent) == sorted(d for d in states(db, rid) if d != canary)
    finally:
        restarted.dispose()


def test_a_package_not_deployable_needs_an_admin_to_force_it(db: Database) -> None:
    add_package(db, deployable=False)
    add_device(db, "cam-0")
    with pytest.raises(Conflict, match="not deployable .*int8 accuracy past its gate"):
        create(db)
    with pytest.raises(Forbidden, match="only an admin"):
        create(db, force=True)
    rid = create(db, force=True, role="admin")
    with db.session() as s:
        forced = audit.entries(s, action="rollout.force")
        assert len(forced) == 1 and forced[0].target == NEW.sha256 and forced[0].actor == "test admin"
        assert rollouts.get_rollout(s, rid).forced
        assert users_of(s, NEW.sha256) == [f"rollout {rid}"]
