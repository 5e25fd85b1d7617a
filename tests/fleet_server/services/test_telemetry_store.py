"""Telemetry retention and downsampling, with explicit times: raw snapshots fold into 1-minute and 1-hour
buckets (avg/min/max/last per field), a late snapshot is folded into its old bucket, raw rows go after the raw
window (never before they are folded), buckets after theirs, and the query picks its resolution."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from edgefleet.protocol import Telemetry
from fleet_server.db import Database, Device, TelemetryRow
from fleet_server.errors import InvalidInput
from fleet_server.services import devices
from fleet_server.services.telemetry_query import pick_step, telemetry
from fleet_server.services.telemetry_rollup import Retention, prune
from fleet_server.telemetry_job import TelemetryJob
from tests.fleet_server.services.rollout_env import add_device

BASE = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
RETENTION = Retention(raw=timedelta(hours=1), minute=timedelta(hours=1), hour=timedelta(days=1))


def _snap(db: Database, seconds: float, fps: float, **fields: object) -> None:
    with db.session() as s:
        assert devices.record_telemetry(s, "cam-1", Telemetry(device_id="cam-1", ts=BASE + timedelta(seconds=seconds),
                                                              fps=fps, **fields))


def _query(db: Database, now: datetime, **kw: object) -> tuple[str, list[dict]]:
    args = {"since": None, "until": None, "step": None, "limit": 1000, **kw}
    with db.session() as s:
        return telemetry(s, "cam-1", now=now, retention=RETENTION, **args)


def test_snapshots_fold_into_buckets_late_ones_too_and_each_resolution_is_pruned_after_its_window(
        db: Database) -> None:
    add_device(db, "cam-1", model=None)
    for seconds, fps, temp in ((0, 10, 40.0), (20, 20, 50.0), (40, 30, 45.0), (70, 5, 60.0)):
        _snap(db, seconds, fps, temperature_c=temp, frames_dropped=int(seconds))
    job = TelemetryJob(db, RETENTION, batch=3)  # a batch smaller than the rows: several transactions
    assert job.run(now=BASE + timedelta(minutes=2)).folded == 4
    assert job.run(now=BASE + timedelta(minutes=2)).folded == 0  # nothing counted twice

    step, minutes = _query(db, BASE + timedelta(minutes=2), step="1m")
    assert step == "1m" and [m["ts"] for m in minutes] == [BASE + timedelta(minutes=1), BASE]  # newest first
    first = minutes[1]
    assert first["samples"] == 3
    assert first["stats"]["fps"] == {"avg": 20.0, "min": 10, "max": 30, "last": 30}
    assert first["stats"]["temperature_c"] == {"avg": 45.0, "min": 40.0, "max": 50.0, "last": 45.0}
    assert "latency_ms_p95" not in first["stats"]  # never reported: no made-up zeros
    (hour,) = _query(db, BASE, step="1h")[1]
    assert hour["samples"] == 4 and hour["stats"]["fps"]["avg"] == 16.25 and hour["stats"]["fps"]["last"] == 5

    _snap(db, 10, 60)  # late: from an outbox, into an already written bucket
    with db.session() as s:
        assert s.get(Device, "cam-1").last_telemetry["fps"] == 5  # the newest snapshot stays the newest
    job.run(now=BASE + timedelta(minutes=3))
    first = _query(db, BASE, step="1m")[1][-1]
    assert first["samples"] == 4 and first["stats"]["fps"]["max"] == 60 and first["stats"]["fps"]["last"] == 30

    assert job.run(now=BASE + timedelta(hours=1, seconds=30)).raw_pruned == 3  # ts 0, 10 and 20 s
    assert [p["fps"] for p in _query(db, BASE + timedelta(hours=1, seconds=30))[1]] == [5, 30]
    result = job.run(now=BASE + timedelta(hours=1, minutes=2))
    assert result.raw_pruned == 2 and result.aggregates_pruned == 1  # the first minute ended 1 h ago; not the second
    assert [m["ts"] for m in _query(db, BASE, step="1m")[1]] == [BASE + timedelta(minutes=1)]
    assert _query(db, BASE, step="1h")[1][0]["samples"] == 5  # the hour is kept a day


def test_raw_rows_not_yet_folded_are_never_pruned(db: Database) -> None:
    add_device(db, "cam-1", model=None)
    _snap(db, 0, 10)
    with db.session() as s:
        assert prune(s, BASE + timedelta(days=2), RETENTION) == (0, 0)
        assert s.query(TelemetryRow).count() == 1


def test_the_query_picks_the_finest_resolution_that_still_holds_the_range(db: Database) -> None:
    now = BASE + timedelta(hours=3)
    assert pick_step(now - timedelta(minutes=30), now, now, RETENTION) == "raw"
    assert pick_step(now - timedelta(minutes=90), now, now, RETENTION) == "1h"  # raw and 1m kept only an hour
    long = Retention(raw=timedelta(days=1), minute=timedelta(days=30), hour=timedelta(days=90))
    assert pick_step(now - timedelta(hours=7), now, now, long) == "1m"  # raw kept, but too many points
    assert pick_step(now - timedelta(days=8), now, now, long) == "1h"

    add_device(db, "cam-1", model=None)
    _snap(db, 0, 10)
    _snap(db, 30, 20)
    TelemetryJob(db, RETENTION).run(now=BASE + timedelta(minutes=5))
    assert _query(db, BASE + timedelta(minutes=5), since=BASE)[0] == "raw"
    step, points = _query(db, BASE + timedelta(hours=2), since=BASE, until=BASE + timedelta(minutes=5))
    assert step == "1h" and points[0]["samples"] == 2
    assert [p["fps"] for p in _query(db, now, since=BASE + timedelta(seconds=1), step="raw")[1]] == [20]
    assert [p["fps"] for p in _query(db, now, until=BASE + timedelta(seconds=1), step="raw")[1]] == [10]
    with pytest.raises(InvalidInput, match="after until"):
        _query(db, now, since=BASE + timedelta(minutes=1), until=BASE)
