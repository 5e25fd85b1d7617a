"""Reading a device's telemetry over a time range at one resolution: raw snapshots, 1-minute or 1-hour buckets.

When the caller names no step, the finest one that still holds the range's start is picked, and a range too
long for it (more points than a chart wants) moves up a step: raw up to 6 hours, 1-minute buckets up to 7 days.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet_server.db.models import TelemetryAggregate, TelemetryRow
from fleet_server.errors import InvalidInput
from fleet_server.services.devices import get_device
from fleet_server.services.telemetry_rollup import Retention, aggregate_view

Step = Literal["raw", "1m", "1h"]
MAX_SPAN = {"raw": timedelta(hours=6), "1m": timedelta(days=7)}


def pick_step(since: datetime, until: datetime, now: datetime, retention: Retention) -> Step:
    """The finest resolution still kept at `since` whose span limit `until - since` fits."""
    span = until - since
    if since >= now - retention.raw and span <= MAX_SPAN["raw"]:
        return "raw"
    if since >= now - retention.minute and span <= MAX_SPAN["1m"]:
        return "1m"
    return "1h"


def telemetry(session: Session, device_id: str, *, since: datetime | None, until: datetime | None,
              step: Step | None, now: datetime, retention: Retention, limit: int) -> tuple[Step, list[dict[str, Any]]]:
    """(step used, points newest first). No range and no step: the newest `limit` raw snapshots."""
    get_device(session, device_id)  # 404 for an unknown device, not an empty list
    if since is not None and until is not None and since > until:
        raise InvalidInput(f"since ({since.isoformat()}) is after until ({until.isoformat()})")
    if step is None:
        step = "raw" if since is None else pick_step(since, until or now, now, retention)
    if step == "raw":
        q = sa.select(TelemetryRow).where(TelemetryRow.device_id == device_id)
        if since is not None:
            q = q.where(TelemetryRow.ts >= since)
        if until is not None:
            q = q.where(TelemetryRow.ts <= until)
        rows = session.scalars(q.order_by(TelemetryRow.ts.desc(), TelemetryRow.id.desc()).limit(limit))
        return step, [row.payload for row in rows]
    q = sa.select(TelemetryAggregate).where(TelemetryAggregate.device_id == device_id, TelemetryAggregate.step == step)
    if since is not None:
        q = q.where(TelemetryAggregate.bucket_start >= since)
    if until is not None:
        q = q.where(TelemetryAggregate.bucket_start <= until)
    aggs = session.scalars(q.order_by(TelemetryAggregate.bucket_start.desc()).limit(limit))
    return step, [aggregate_view(agg) for agg in aggs]
