"""The alert webhook: each alert transition POSTed as JSON to `alert_webhook_url`, retried with backoff
(edgefleet.backoff) on a connection error, a timeout or a 5xx/429 answer, given up after `attempts` tries.

Why a thread with a bounded queue: the evaluator (and an API acknowledgement) only enqueue, so a slow or dead
receiver never holds them up, let alone ingest; past `MAX_QUEUED` waiting deliveries new ones are dropped and
counted rather than held in memory without end. Deliveries go out in order, one at a time.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import Counter
from typing import Any

import httpx

from edgefleet.backoff import Backoff

log = logging.getLogger(__name__)
MAX_QUEUED = 1000


class WebhookSender:
    def __init__(self, url: str, *, attempts: int = 5, backoff_s: float = 1.0, timeout_s: float = 5.0) -> None:
        self.url, self.attempts, self.timeout_s = url, attempts, timeout_s
        self.backoff = Backoff(initial_delay_s=backoff_s, max_delay_s=max(backoff_s, 60.0), jitter=0.1)
        self.results: Counter[str] = Counter()  # delivered | failed (every try refused) | dropped (queue full)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(MAX_QUEUED)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self._thread.start()

    def send(self, body: dict[str, Any]) -> None:
        """Queue one delivery; never blocks."""
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.results["dropped"] += 1
            log.warning("alert webhook: %d deliveries waiting; dropped one", MAX_QUEUED)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while True:
                body = self._queue.get()
                if body is None:
                    return
                self._deliver(client, body)

    def _deliver(self, client: httpx.Client, body: dict[str, Any]) -> None:
        content = json.dumps(body, default=str).encode()
        for attempt in range(1, self.attempts + 1):
            try:
                answer = client.post(self.url, content=content, headers={"Content-Type": "application/json"})
                if answer.status_code < 500 and answer.status_code != 429:
                    self.results["delivered" if answer.is_success else "failed"] += 1
                    if not answer.is_success:
                        log.warning("alert webhook refused a delivery: HTTP %d", answer.status_code)
                    return
                why = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                log.info("alert webhook try %d of %d failed (%s); retrying", attempt, self.attempts, why)
                if self._stop.wait(self.backoff.delay(attempt)):
                    break
        self.results["failed"] += 1
        log.warning("alert webhook: gave up on a delivery (%s)", body.get("event"))

    def close(self) -> None:
        """Stop after the delivery in progress (its retries cut short); queued ones are dropped."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout=30)
