"""The progress log of a training run: one line as each step starts, its duration when it ends.

It prints to stderr so ``edgefleet train --json`` keeps stdout for the JSON alone, and it keeps the durations,
which the summary reports per step."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StepLog:
    """Prints each step as it starts and how long it took; ``enabled=False`` keeps the timings but prints nothing."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, quiet=not enabled)
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def step(self, name: str, what: str) -> Iterator[None]:
        self.console.print(f"[bold cyan]> {what}[/]")
        t = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - t, 2)
        self.console.print(f"  [green]done[/] {name} in {self.seconds[name]:.1f} s")

    def note(self, text: str) -> None:
        self.console.print(f"  {text}")

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self._start, 2)
