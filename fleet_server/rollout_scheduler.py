"""The thread that moves rollouts along: every tick it re-reads the active rollouts from the database and takes
one step of each (services.rollout_steps), then publishes the desired twins that step changed.

It keeps nothing between ticks, so a server that restarts mid-rollout continues from the database, and
`tick()` can be called directly (with a chosen `now`) by whoever wants a step without the thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from fleet_server.db import Database
from fleet_server.events import EventHub
from fleet_server.periodic import PeriodicThread
from fleet_server.services import rollouts
from fleet_server.services.rollout_steps import step, utcnow

log = logging.getLogger(__name__)
TICK_S = 1.0


class RolloutScheduler:
    """`publish(device_id) -> bool` sends a device's stored desired twin (Fleet.publish_desired); a twin it
    could not send stays stored and goes out when the bridge reconnects."""

    def __init__(self, db: Database, publish: Callable[[str], bool], *, tick_s: float = TICK_S,
                 events: EventHub | None = None) -> None:
        self._db = db
        self._publish = publish
        self._events = events or EventHub()
        self._thread = PeriodicThread("rollout-scheduler", tick_s, self.tick)

    def tick(self, now: datetime | None = None) -> int:
        """One step of every running or paused rollout; returns how many desired twins changed. A rollout
        whose step fails is logged and tried again next tick; the others still move."""
        now = now or utcnow()
        with self._db.session() as session:
            ids = [r.id for r in rollouts.list_rollouts(session) if r.state in rollouts.ACTIVE]
        changed = 0
        for rollout_id in ids:
            try:
                with self._db.session() as session:
                    devices = step(session, rollout_id, now=now)
                    session.commit()
            except Exception:  # noqa: BLE001 - one rollout's trouble must not stop the others
                log.exception("rollout %d: step failed; trying again next tick", rollout_id)
                continue
            for device_id in devices:
                self._publish(device_id)
            if devices:
                self._events.publish("rollout.progress", {"id": rollout_id, "devices_changed": len(devices)})
            changed += len(devices)
        return changed

    def start(self) -> "RolloutScheduler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()
