"""Monitoring end to end: the whole server (embedded broker, bridge, telemetry job and alert evaluator threads)
and a simulated agent running the real agent code. Its telemetry reaches `Fleet.events` subscribers, /metrics
(per device, and the ingest counters), the 1-minute buckets; every metric the Grafana dashboard queries exists;
and when the agent's connection dies, its Last Will makes the evaluator fire `device_offline`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.fleet.sim import SimulatedDevice, enroll_simulated
from fleet_server.events import HubEvent
from fleet_server.server import ServerHandle
from tests.fleet_server.live_server import running_server
from tests.waiting import wait_for

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "edgefleet-dashboard.json"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    with running_server(tmp_path / "server", telemetry_job_s=0.5, alert_eval_s=0.5) as handle:
        yield handle


def _metrics(url: str) -> dict[str, dict[str, float]]:
    """sample name -> {device_id (or the result label, or ''): value}; a family with no samples (no board
    reports a temperature here) is still described, under its name with no values."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        out.setdefault(family.name, {})
        for sample in family.samples:
            key = sample.labels.get("device_id", sample.labels.get("result", ""))
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def _dashboard_metrics() -> set[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in doc["panels"] for t in panel["targets"]]
    exprs += [v["definition"] for v in doc["templating"]["list"] if "definition" in v]
    return {name for expr in exprs for name in re.findall(r"\b(edgefleet_[a-z0-9_]+)", expr)}


def test_an_agents_telemetry_feeds_events_metrics_buckets_and_its_last_will_an_alert(
        server: ServerHandle, tmp_path: Path) -> None:
    heard: list[HubEvent] = []
    server.fleet.events.listen(heard.append)
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    api = f"{server.url}/api/v1"
    token = httpx.post(f"{api}/tokens", json={"uses": 1}, headers=headers).json()["token"]
    (config,) = enroll_simulated(server.url, token, tmp_path / "agents", 1, prefix="mon")
    config = config.model_copy(update={"telemetry_interval_s": 0.3})
    device_id = config.device_id
    agent = SimulatedDevice(config, tmp_path / "agents" / "mon-0000", fps=20).start()
    try:
        assert agent.wait_ready(30)
        snapshot = wait_for(lambda: next((e for e in heard if e.kind == "device.telemetry"
                                          and e.data["telemetry"].get("fps")), None),
                            30, "a telemetry event with frames in it")
        assert snapshot.data["device_id"] == device_id and snapshot.data["telemetry"]["camera_state"] == "streaming"
        assert any(e.kind == "device.status" and e.data["status"]["state"] == "online" for e in heard)

        metrics = wait_for(lambda: (m := _metrics(server.url)).get("edgefleet_device_fps", {}).get(device_id) and m,
                           30, "the device's fps on /metrics")
        assert metrics["edgefleet_device_online"][device_id] == 1.0
        assert metrics["edgefleet_device_frames_inferred_total"][device_id] > 0
        assert metrics["edgefleet_telemetry_snapshots_total"]["stored"] >= 1
        names = set(metrics) | {n.removesuffix("_total") for n in metrics}
        assert _dashboard_metrics() and _dashboard_metrics() <= names, _dashboard_metrics() - names

        buckets = wait_for(lambda: httpx.get(f"{api}/devices/{device_id}/telemetry", params={"step": "1m"},
                                             headers=headers).json(), 30, "a 1-minute bucket from the job thread")
        assert buckets[0]["samples"] >= 1 and buckets[0]["stats"]["fps"]["max"] > 0

        agent.link.kill()  # no goodbye: the broker publishes the Last Will

        def offline_alert() -> dict | None:
            firing = httpx.get(f"{api}/alerts", params={"state": "firing"}, headers=headers).json()
            return next((a for a in firing if a["rule"] == "device_offline" and a["device_id"] == device_id), None)

        alert = wait_for(offline_alert, 60, "device_offline from the evaluator thread")
        assert "offline" in alert["message"]
        assert any(e.kind == "alert" and e.data["id"] == alert["id"] and e.data["transition"] == "firing"
                   for e in heard)
        assert _metrics(server.url)["edgefleet_device_online"][device_id] == 0.0
    finally:
        agent.stop()
