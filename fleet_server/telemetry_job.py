"""The periodic telemetry job: fold new raw snapshots into 1-minute and 1-hour buckets, then prune each
resolution past its retention (services.telemetry_rollup). `run(now)` is the whole job, callable from tests
with an explicit time; the server runs it every `telemetry_job_s` in a `PeriodicThread`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from fleet_server.db import Database
from fleet_server.services.telemetry_rollup import BATCH, Retention, RollupResult, fold_pending, prune
from fleet_server.settings import ServerSettings

log = logging.getLogger(__name__)


def retention_of(settings: ServerSettings) -> Retention:
    return Retention(raw=timedelta(seconds=settings.telemetry_raw_retention_s),
                     minute=timedelta(seconds=settings.telemetry_minute_retention_s),
                     hour=timedelta(seconds=settings.telemetry_hour_retention_s))


class TelemetryJob:
    def __init__(self, db: Database, retention: Retention, *, batch: int = BATCH) -> None:
        self.db, self.retention, self.batch = db, retention, batch

    def run(self, now: datetime | None = None) -> RollupResult:
        """Fold everything pending (one transaction per batch), then prune. Rows folded are never pruned
        before their batch commits, so an interrupted run loses nothing."""
        now = now or datetime.now(timezone.utc)
        folded = 0
        while True:
            with self.db.session() as session:
                n = fold_pending(session, batch=self.batch)
            folded += n
            if n < self.batch:
                break
        with self.db.session() as session:
            raw, aggregates = prune(session, now, self.retention)
        if folded or raw or aggregates:
            log.debug("telemetry: folded %d, pruned %d raw and %d aggregates", folded, raw, aggregates)
        return RollupResult(folded=folded, raw_pruned=raw, aggregates_pruned=aggregates)
