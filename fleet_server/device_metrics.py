"""Per-device and fleet-wide gauges for /metrics, read from the database at scrape time.

Why a custom Collector and not labelled Gauges set on ingest: a labelled gauge keeps a series for every device
ever seen until someone removes it, so a decommissioned device would report its last fps forever; reading the
inventory at each scrape shows exactly the active devices (and survives restarts and server replicas, which
share the database). Values come from each device's newest telemetry snapshot (DESIGN.md 5).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from fleet_server.db.models import Alert, Device
from fleet_server.services.alert_rules import RULES

QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))
# snapshot field -> (metric name, help); gauges of the newest snapshot, absent where the device reports none
GAUGES = {
    "fps": ("edgefleet_device_fps", "Frames per second the device infers (newest snapshot)"),
    "cpu_percent": ("edgefleet_device_cpu_percent", "CPU use of the agent process, percent of one core"),
    "memory_mb": ("edgefleet_device_memory_mb", "Resident memory of the agent process, MB"),
    "temperature_c": ("edgefleet_device_temperature_celsius", "Hottest temperature sensor the board reports"),
    "outbox_depth": ("edgefleet_device_outbox_depth", "Messages waiting in the agent's offline outbox"),
}
# snapshot field -> counter name (cumulative since the agent started; a restart is a counter reset)
COUNTERS = {
    "frames_captured": ("edgefleet_device_frames_captured", "Frames the camera delivered since the agent started"),
    "frames_inferred": ("edgefleet_device_frames_inferred", "Frames inferred since the agent started"),
    "frames_dropped": ("edgefleet_device_frames_dropped", "Frames dropped (not inferred) since the agent started"),
    "outbox_dropped": ("edgefleet_device_outbox_dropped", "Messages the full outbox dropped since the agent started"),
}


@dataclass(frozen=True)
class DeviceState:
    device_id: str
    online: bool
    model: str
    version: str
    telemetry: dict[str, Any]


@dataclass(frozen=True)
class FleetState:
    devices: list[DeviceState]
    alerts_firing: dict[str, int]


def read_state(session: Session) -> FleetState:
    """Active devices with their newest snapshot and running model (reported twin, else telemetry)."""
    states = []
    for device in session.scalars(sa.select(Device).where(Device.decommissioned_at.is_(None)).order_by(Device.id)):
        telemetry = device.last_telemetry or {}
        model = (device.reported or {}).get("model") or {}
        states.append(DeviceState(
            device_id=device.id, online=device.status == "online", telemetry=telemetry,
            model=str(model.get("name") or telemetry.get("model_name") or ""),
            version=str(model.get("version") or telemetry.get("model_version") or "")))
    firing = session.execute(sa.select(Alert.rule, sa.func.count()).where(Alert.state == "firing")
                             .group_by(Alert.rule))
    return FleetState(states, {rule: count for rule, count in firing})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class DeviceCollector(Collector):
    def __init__(self, state: Callable[[], FleetState]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        yield from self._per_device(state.devices)
        yield from self._fleet(state)

    @staticmethod
    def _per_device(devices: list[DeviceState]) -> Iterator[Metric]:
        online = GaugeMetricFamily("edgefleet_device_online", "1 while the device's status is online",
                                   labels=["device_id"])
        info = GaugeMetricFamily("edgefleet_device_model_info", "The model the device runs (value 1; model and "
                                 "version in labels, empty when none)", labels=["device_id", "model", "version"])
        latency = GaugeMetricFamily("edgefleet_device_latency_ms", "End-to-end frame latency quantiles over the "
                                    "agent's recent frames, ms", labels=["device_id", "quantile"])
        inference = GaugeMetricFamily("edgefleet_device_inference_ms", "Inference time quantiles, ms",
                                      labels=["device_id", "quantile"])
        gauges = {field: GaugeMetricFamily(name, doc, labels=["device_id"]) for field, (name, doc) in GAUGES.items()}
        counters = {field: CounterMetricFamily(name, doc, labels=["device_id"])
                    for field, (name, doc) in COUNTERS.items()}
        for d in devices:
            online.add_metric([d.device_id], 1.0 if d.online else 0.0)
            info.add_metric([d.device_id, d.model, d.version], 1.0)
            for quantile, suffix in QUANTILES:
                for family, prefix in ((latency, "latency_ms_"), (inference, "inference_ms_")):
                    value = _number(d.telemetry.get(prefix + suffix))
                    if value is not None:
                        family.add_metric([d.device_id, quantile], value)
            for field, family in (*gauges.items(), *counters.items()):
                value = _number(d.telemetry.get(field))
                if value is not None:
                    family.add_metric([d.device_id], value)
        yield from (online, info, latency, inference, *gauges.values(), *counters.values())

    @staticmethod
    def _fleet(state: FleetState) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("edgefleet_devices", "Active devices by status", labels=["state"])
        online = sum(d.online for d in state.devices)
        by_state.add_metric(["online"], online)
        by_state.add_metric(["offline"], len(state.devices) - online)
        yield by_state
        by_model = GaugeMetricFamily("edgefleet_devices_by_model", "Active devices by the model they run",
                                     labels=["model", "version"])
        for (model, version), count in sorted(Counter((d.model, d.version) for d in state.devices).items()):
            by_model.add_metric([model, version], count)
        yield by_model
        alerts = GaugeMetricFamily("edgefleet_alerts_firing", "Alerts firing, by rule", labels=["rule"])
        for rule in RULES:
            alerts.add_metric([rule], state.alerts_firing.get(rule, 0))
        yield alerts
