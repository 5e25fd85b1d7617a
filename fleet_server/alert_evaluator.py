"""The alert evaluator: `tick(now)` judges every rule once (services.alerts), commits, then tells the listeners
of each transition: `Fleet.events` (kind `alert`, the dashboard's stream) and, when configured, the webhook. The server calls `tick`
every `alert_eval_s` from a `PeriodicThread`; tests call it with an explicit time. It keeps nothing between
ticks: the alerts are in the database, so a restarted server resolves what fired before it stopped."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet_server.alert_webhook import WebhookSender
from fleet_server.db import Database
from fleet_server.events import EventHub
from fleet_server.services import alerts
from fleet_server.services.alerts import Transition

log = logging.getLogger(__name__)


# PostgreSQL advisory lock key: server replicas sharing a database take turns, so no alert fires twice.
ADVISORY_KEY = 0x65_66_61_6C  # "efal"


def _sole_evaluator(session: Session) -> bool:
    """True unless another server replica is evaluating right now (PostgreSQL; SQLite has one writer anyway)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(ADVISORY_KEY))))


class AlertEvaluator:
    def __init__(self, db: Database, events: EventHub, webhook: WebhookSender | None = None) -> None:
        self.db, self.events, self.webhook = db, events, webhook
        self._lock = threading.Lock()  # the thread's tick and a test's never judge at once

    def tick(self, now: datetime | None = None) -> list[Transition]:
        now = now or datetime.now(timezone.utc)
        with self._lock:
            with self.db.session() as session:
                if not _sole_evaluator(session):
                    return []
                transitions = alerts.evaluate(session, now)
        for transition in transitions:
            self.announce(transition)
        return transitions

    def announce(self, transition: Transition) -> None:
        """After the transition is committed: the in-process event, then the webhook (queued, never waited on)."""
        view = transition.alert
        self.events.publish("alert", {**view, "transition": transition.transition})
        if self.webhook is not None:
            self.webhook.send({"event": f"alert.{transition.transition}", "alert": view})

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.close()
