"""``edgefleet agent cameras``: what video4linux capture devices udev sees now."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from edge_agent.engine.discovery.info import CameraInfo


def cameras_command(json_out: bool = False, *, context: Any = None, console: Console | None = None) -> list[CameraInfo]:
    """Print the capture cameras as a table (or JSON with ``json_out``) and return them. Says so plainly when
    there are none, or when udev cannot be read at all (no pyudev installed)."""
    console = console or Console()
    try:
        from edge_agent.engine.discovery.udev import list_cameras

        cameras = list_cameras(context)
    except ImportError:
        console.print("cannot list cameras: pyudev is not installed (pip install 'edgefleet[agent]')")
        return []
    if json_out:
        console.print_json(json.dumps([c.as_dict() for c in cameras]))
        return cameras
    if not cameras:
        console.print("no cameras found (no video4linux capture device is connected)")
        return cameras
    table = Table(title="cameras")
    for column in ("device", "vendor", "model", "serial", "identity", "capabilities"):
        table.add_column(column)
    for c in cameras:
        table.add_row(c.devnode, c.vendor or "-", c.model or "-", c.serial or "-", c.identity, ",".join(c.capabilities))
    console.print(table)
    return cameras


def watch_cameras(
    *, console: Console | None = None, monitor: Any = None, stop: threading.Event | None = None
) -> None:
    """Print cameras as they are plugged in and out until ``stop`` is set or Ctrl-C (``agent cameras --watch``)."""
    from edge_agent.engine.discovery.hotplug import HotplugWatcher

    console = console or Console()
    stop = stop or threading.Event()

    def line(verb: str) -> Callable[[CameraInfo], None]:
        return lambda c: console.print(f"{verb} {c.devnode}  {c.vendor or '-'} {c.model or '-'}  {c.identity}")

    watcher = HotplugWatcher(line("added"), line("removed"), monitor).start()
    console.print(f"watching for cameras (udev events from {watcher.source}); Ctrl-C to stop")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
