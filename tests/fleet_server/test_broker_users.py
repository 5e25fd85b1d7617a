"""Changes to who may log in are batched: concurrent callers share reloads, and each returns only once its own
change is live (a reload that started before the change does not count)."""

from __future__ import annotations

import threading
import time

import pytest

from fleet_server.broker_users import BrokerUserSync


class Inventory:
    """A list of logins and a record of what was applied, with a slow apply like a real reload."""

    def __init__(self, apply_s: float = 0.05) -> None:
        self.logins: list[tuple[str, str]] = []
        self.applied: list[list[tuple[str, str]]] = []
        self.apply_s = apply_s
        self.fail = False
        self.lock = threading.Lock()

    def read(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.logins)

    def apply(self, logins: list[tuple[str, str]]) -> None:
        time.sleep(self.apply_s)
        if self.fail:
            raise RuntimeError("nats-server refused the users file")
        self.applied.append(logins)

    def add(self, device_id: str) -> None:
        with self.lock:
            self.logins.append((device_id, "$2b$04$hash"))


def test_every_caller_returns_with_its_own_change_applied_and_concurrent_ones_share_reloads() -> None:
    inventory = Inventory()
    sync = BrokerUserSync(inventory.read, inventory.apply)
    seen: dict[str, bool] = {}

    def enroll(device_id: str) -> None:
        inventory.add(device_id)
        assert sync.changed(10)
        seen[device_id] = any(device_id in dict(applied) for applied in inventory.applied)

    try:
        threads = [threading.Thread(target=enroll, args=(f"cam-{i}",)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    finally:
        sync.close()
    assert seen == {f"cam-{i}": True for i in range(20)}
    assert len(inventory.applied) < 20  # batched


def test_a_failed_apply_reaches_the_caller_and_the_next_change_still_works() -> None:
    inventory = Inventory(apply_s=0.0)
    sync = BrokerUserSync(inventory.read, inventory.apply)
    try:
        inventory.fail = True
        with pytest.raises(RuntimeError, match="refused the users file"):
            sync.changed(5)
        inventory.fail = False
        inventory.add("cam-1")
        assert sync.changed(5) and inventory.applied[-1] == [("cam-1", "$2b$04$hash")]
    finally:
        sync.close()
