"""The one way tests wait: until something becomes true, never for a fixed time.

A test that sleeps "long enough" is slow on a fast machine and flaky on a loaded one; waiting for the condition
itself is neither. The timeout only bounds how long a broken system may keep the test hanging.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# How often a predicate is re-checked: when polling, and at the latest when waiting on a condition variable
# (the predicate may also read state that changes without a notify, such as a counter of another thread).
INTERVAL = 0.01
COND_RECHECK = 0.1


def _describe(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, what: str | Callable[[], str] = "condition", *,
             cond: threading.Condition | None = None) -> T:
    """Return the first truthy value of ``predicate``; fail the test (AssertionError) after ``timeout`` seconds.

    With ``cond``, the predicate runs under that lock and is re-checked whenever it is notified, which is how the
    MQTT test client wakes its waiters on each message without polling. ``what`` names the condition in the
    failure message; a callable is called only then, so it can show the state that did arrive.
    """
    deadline = time.monotonic() + timeout
    if cond is None:
        while not (value := predicate()):
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {_describe(what)}")
            time.sleep(INTERVAL)
        return value
    with cond:
        while not (value := predicate()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {_describe(what)}")
            cond.wait(min(left, COND_RECHECK))
        return value
