"""Downsampling and retention of telemetry: raw snapshots are folded into 1-minute and 1-hour buckets, then
pruned once older than the raw window; the buckets are pruned after their own windows.

Why mergeable parts (n, sum, min, max, last) instead of finished averages: a snapshot may arrive hours late
(an agent's outbox replaying what it kept offline), after its bucket was written; it is folded into that
bucket like any other, and no raw row is deleted before it is folded (`aggregated`), so nothing is lost and
nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet_server.db.models import TelemetryAggregate, TelemetryRow

# The snapshot's numeric fields (DESIGN.md 5) that are aggregated.
NUMERIC_FIELDS = ("fps", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "inference_ms_p50", "inference_ms_p95",
                  "cpu_percent", "memory_mb", "temperature_c", "frames_captured", "frames_inferred", "frames_dropped",
                  "outbox_depth", "outbox_dropped", "uptime_s")
STEPS: dict[str, timedelta] = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1)}
BATCH = 2000


@dataclass(frozen=True)
class Retention:
    """How long each resolution is kept (ServerSettings' telemetry_*_retention_s)."""

    raw: timedelta = timedelta(days=1)
    minute: timedelta = timedelta(days=7)
    hour: timedelta = timedelta(days=90)


@dataclass(frozen=True)
class RollupResult:
    folded: int
    raw_pruned: int
    aggregates_pruned: int


def bucket_start(ts: datetime, step: str) -> datetime:
    if step == "1m":
        return ts.replace(second=0, microsecond=0)
    return ts.replace(minute=0, second=0, microsecond=0)


def _merge(stats: dict[str, Any], payload: dict[str, Any], newest: bool) -> None:
    for name in NUMERIC_FIELDS:
        value = payload.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        part = stats.get(name)
        if part is None:
            stats[name] = {"n": 1, "sum": value, "min": value, "max": value, "last": value}
            continue
        part["n"] += 1
        part["sum"] += value
        part["min"], part["max"] = min(part["min"], value), max(part["max"], value)
        if newest:
            part["last"] = value


def _bucket(session: Session, cache: dict[tuple[str, str, datetime], TelemetryAggregate], device_id: str,
            step: str, start: datetime, ts: datetime) -> TelemetryAggregate:
    key = (device_id, step, start)
    agg = cache.get(key)
    if agg is None:
        agg = session.scalars(sa.select(TelemetryAggregate).where(
            TelemetryAggregate.device_id == device_id, TelemetryAggregate.step == step,
            TelemetryAggregate.bucket_start == start).with_for_update()).one_or_none()
        if agg is None:
            agg = TelemetryAggregate(device_id=device_id, step=step, bucket_start=start, samples=0, last_ts=ts,
                                     stats={})
            session.add(agg)
        cache[key] = agg
    return agg


def fold_pending(session: Session, *, batch: int = BATCH) -> int:
    """Fold up to `batch` raw rows not yet aggregated into their buckets and mark them; returns how many.
    Rows are taken with SKIP LOCKED on PostgreSQL, so two server replicas fold disjoint rows."""
    rows = list(session.scalars(sa.select(TelemetryRow).where(TelemetryRow.aggregated.is_(False))
                                .order_by(TelemetryRow.id).limit(batch).with_for_update(skip_locked=True)))
    cache: dict[tuple[str, str, datetime], TelemetryAggregate] = {}
    for row in rows:
        for step in STEPS:
            agg = _bucket(session, cache, row.device_id, step, bucket_start(row.ts, step), row.ts)
            newest = agg.samples == 0 or row.ts >= agg.last_ts
            stats = {name: dict(part) for name, part in (agg.stats or {}).items()}  # a new value, so it is saved
            _merge(stats, row.payload or {}, newest)
            agg.stats, agg.samples = stats, agg.samples + 1
            if newest:
                agg.last_ts = row.ts
        row.aggregated = True
    session.flush()
    return len(rows)


def prune(session: Session, now: datetime, retention: Retention) -> tuple[int, int]:
    """Delete folded raw rows older than the raw window and buckets older than theirs: (raw, aggregates)."""
    raw = session.execute(sa.delete(TelemetryRow).where(
        TelemetryRow.ts < now - retention.raw, TelemetryRow.aggregated.is_(True))).rowcount or 0
    aggregates = 0
    for step, keep in (("1m", retention.minute), ("1h", retention.hour)):
        aggregates += session.execute(sa.delete(TelemetryAggregate).where(
            TelemetryAggregate.step == step, TelemetryAggregate.bucket_start < now - keep - STEPS[step])
        ).rowcount or 0
    return raw, aggregates


def aggregate_view(agg: TelemetryAggregate) -> dict[str, Any]:
    """A bucket as the API shows it: per field avg/min/max/last."""
    stats = {name: {"avg": part["sum"] / part["n"], "min": part["min"], "max": part["max"], "last": part["last"]}
             for name, part in (agg.stats or {}).items() if part.get("n")}
    return {"ts": agg.bucket_start, "step": agg.step, "samples": agg.samples, "last_ts": agg.last_ts, "stats": stats}
