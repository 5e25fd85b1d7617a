"""``edgefleet agent cameras``: what video4linux capture devices udev sees now."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from edge_agent.discovery.info import CameraInfo


def cameras_command(json_out: bool = False, *, context: Any = None, console: Console | None = None) -> list[CameraInfo]:
    """Print the capture cameras as a table (or JSON with ``json_out``) and return them. Says so plainly when
    there are none, or when udev cannot be read at all (no pyudev installed)."""
    console = console or Console()
    try:
        from edge_agent.discovery.udev import list_cameras

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
