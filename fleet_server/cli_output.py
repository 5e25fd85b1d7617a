"""How the CLI shows things: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    # plain print: rich would wrap long lines and break the JSON for scripts
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _short(ts: str | None) -> str:
    return (ts or "-").replace("T", " ")[:19]


def _tags(tags: dict[str, str] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted((tags or {}).items())) or "-"


def devices_table(devices: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(devices)} device(s)")
    table.add_column("device", no_wrap=True)
    for col in ("name", "status", "agent", "last seen", "desired rev", "in sync", "tags"):
        table.add_column(col)
    for d in devices:
        status = d["status"]
        style = "green" if d.get("online") else ("dim" if status == "decommissioned" else "red")
        sync = {None: "-", True: "[green]yes[/]", False: "[yellow]no[/]"}[d.get("in_sync")]
        table.add_row(d["id"], d.get("name") or "-", f"[{style}]{status}[/]", d.get("agent_version") or "-",
                      _short(d.get("last_seen")), str(d.get("desired_revision", 0)), sync, _tags(d.get("tags")))
    return table


def device_detail(d: dict[str, Any]) -> Table:
    table = Table(title=f"device {d['id']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key in ("name", "status", "agent_version", "last_seen", "enrolled_at", "decommissioned_at",
                "desired_revision", "in_sync", "cert_serial"):
        table.add_row(key, str(d.get(key)) if d.get(key) is not None else "-")
    table.add_row("tags", _tags(d.get("tags")))
    for key in ("desired", "reported", "hardware"):
        table.add_row(key, json.dumps(d.get(key), indent=1, sort_keys=True) if d.get(key) else "-")
    return table


def tokens_table(tokens: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(tokens)} enrollment token(s)")
    table.add_column("id", no_wrap=True)
    for col in ("uses left", "expires", "tags", "created by"):
        table.add_column(col)
    for t in tokens:
        table.add_row(t["id"], f"{t['uses_left']}/{t['uses_total']}", _short(t["expires_at"]), _tags(t.get("tags")),
                      t["created_by"])
    return table


def keys_table(keys: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(keys)} API key(s)")
    for col in ("id", "prefix", "role", "name", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(str(k["id"]), k["prefix"], k["role"], k["name"], _short(k["created_at"]),
                      _short(k.get("revoked_at")))
    return table
