"""The demo's over-the-air part, through the server's API as an operator's script would: publish a signed package
to the model registry, roll it out (canary, then a wave) and follow each device until the rollout ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

FINAL_ROLLOUT_STATES = {"succeeded", "halted", "aborted"}


def publish(api: Any, package: Path) -> dict[str, Any]:
    """POST the package to the registry (idempotent for the same bytes); the server verifies its signature."""
    with package.open("rb") as body:
        answer = api.post("/models", content=body, headers={"Content-Type": "application/octet-stream"},
                          timeout=120)
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"publishing {package.name} failed: {answer.status_code} {answer.text}")
    return answer.json()


def roll_out(api: Any, name: str, version: str, *, canary_percent: float, waves: int,
             wave_timeout_s: int = 120) -> int:
    body = {"model": f"{name}:{version}", "target": "all", "canary_percent": canary_percent, "waves": waves,
            "max_failure_percent": 0, "wave_timeout_s": wave_timeout_s, "rollback_on_halt": True}
    answer = api.post("/rollouts", json=body)
    if answer.status_code != 201:
        raise RuntimeError(f"creating the rollout of {name} {version} failed: {answer.status_code} {answer.text}")
    return int(answer.json()["id"])


def follow(api: Any, rollout_id: int, console: Console, timeout: float) -> dict[str, Any]:
    """Print each device's state as it changes; return the rollout once it is final (or the timeout passes)."""
    seen: dict[str, tuple] = {}
    deadline = time.monotonic() + timeout
    while True:
        rollout = api.get(f"/rollouts/{rollout_id}").json()
        for wave in rollout["wave_list"]:
            label = "canary" if wave["wave"] == 0 else f"wave {wave['wave']}"
            for dev in wave["devices"]:
                shown = (dev["state"], None if dev["progress"] is None else int(dev["progress"]) // 25)
                if seen.get(dev["device_id"]) != shown:
                    seen[dev["device_id"]] = shown
                    progress = "" if dev["progress"] is None else f" {dev['progress']:.0f}%"
                    reason = f" ({dev['reason']})" if dev["reason"] else ""
                    console.print(f"  {label:7} {dev['device_id']}: {dev['state']}{progress}{reason}")
        if rollout["state"] in FINAL_ROLLOUT_STATES or time.monotonic() > deadline:
            return rollout
        time.sleep(0.5)


def rollout_table(rollout: dict[str, Any]) -> Table:
    model = rollout["model"]
    table = Table(title=f"rollout {rollout['id']}: {model['name']} {model['version']} -> {rollout['state']}"
                        + (f" ({rollout['reason']})" if rollout.get("reason") else ""))
    for col in ("wave", "device", "final state", "reason"):
        table.add_column(col)
    for wave in rollout["wave_list"]:
        for dev in wave["devices"]:
            table.add_row("canary" if wave["wave"] == 0 else str(wave["wave"]), dev["device_id"], dev["state"],
                          dev["reason"] or "")
    return table
