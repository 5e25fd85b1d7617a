"""How a rollout reads each device's update: the shadow evaluation it asks for reaches the desired twin, and the
agent's final update states (succeeded with its shadow agreement, failed, rolled_back, timed_out) become the
device's state in the rollout, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fleet_server.services import rollouts
from fleet_server.services.rollouts import RolloutCreate
from tests.fleet_server.services.rollout_env import (NEW, OLD, add_device, add_package, create, desired_model,
                                                     desired_properties, report, rollout_state, scheduler, states)


def test_the_device_reports_decide_its_state_and_the_shadow_gate_fails_low_agreement(db) -> None:  # noqa: ANN001
    add_package(db)
    ids = [f"cam-{i}" for i in range(6)]
    for device_id in ids:
        add_device(db, device_id)
    rid = create(db, canary_percent=100, waves=1, shadow_s=30, min_agreement=0.9)
    sched, _ = scheduler(db)
    sched.tick()
    assert all(desired_properties(db, d)["shadow"] == {"sha256": NEW.sha256, "window_s": 30.0,
                                                       "min_agreement": 0.9} for d in ids)
    shadow = {"agreement": 0.95, "frames": 40, "p95_ms_current": 3.0, "p95_ms_new": 4.0}
    report(db, "cam-0", update={"state": "succeeded", "shadow": shadow})
    report(db, "cam-1", update={"state": "succeeded", "shadow": {**shadow, "agreement": 0.5}})
    report(db, "cam-2", model=OLD, update={"state": "failed", "reason": "shadow agreement 0.310 < 0.9",
                                           "shadow": {**shadow, "agreement": 0.31}})
    report(db, "cam-3", model=OLD, ota_state="failed", error="timed out: no progress in download for 300s",
           update={"state": "timed_out", "reason": "no progress in download for 300s"})
    report(db, "cam-4", model=OLD, update={"state": "rolled_back", "reason": "failed its health check: slow"})
    report(db, "cam-5", update={"state": "checking", "shadow": shadow})  # not done yet
    sched.tick()
    assert states(db, rid) == {"cam-0": "succeeded", "cam-1": "failed", "cam-2": "failed", "cam-3": "timed_out",
                               "cam-4": "failed", "cam-5": "updating"}
    with db.session() as s:
        reasons = {rd.device_id: rd.reason for rd in rollouts.devices_of(s, rid)}
    assert reasons["cam-1"] == "shadow agreement 0.5 below the rollout's minimum 0.9"
    assert reasons["cam-2"] == "update failed: shadow agreement 0.310 < 0.9"
    assert reasons["cam-3"] == "update timed out on the device: no progress in download for 300s"
    assert reasons["cam-4"] == "update rolled back on the device: failed its health check: slow"

    report(db, "cam-5", update={"state": "succeeded", "shadow": shadow})
    sched.tick()  # the wave is done with failures past 0%: halted, and the started devices set back
    assert rollout_state(db, rid)[0] == "halted"
    assert desired_model(db, "cam-0") == OLD and "shadow" not in desired_properties(db, "cam-0")


def test_a_rollout_without_shadow_clears_one_left_in_the_twin(db) -> None:  # noqa: ANN001
    add_package(db)
    add_device(db, "cam-0")
    first = create(db, shadow_s=10)
    sched, _ = scheduler(db)
    sched.tick()
    assert desired_properties(db, "cam-0")["shadow"]["min_agreement"] == 0.0  # measured and reported only
    report(db, "cam-0", update={"state": "succeeded"})  # (a device with no model before compares nothing)
    sched.tick()
    assert rollout_state(db, first)[0] == "succeeded"
    create(db)
    sched.tick()
    assert "shadow" not in desired_properties(db, "cam-0")


@pytest.mark.parametrize("spec, why", [
    ({"min_agreement": 0.9}, "min_agreement needs a shadow evaluation"),
    ({"shadow_s": 60, "wave_timeout_s": 60}, "must be shorter than wave_timeout_s"),
    ({"shadow_s": 0}, "greater than 0"),
    ({"shadow_s": 30, "min_agreement": 1.1}, "less than or equal to 1"),
])
def test_shadow_parameters_are_validated(spec: dict, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        RolloutCreate(model="det:2", **spec)
