"""Prometheus metrics, one registry per server (not the global one) so in-process test servers do not clash."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REFUSAL_KINDS = ("enroll_address", "enroll_token", "body_too_large")
MQTT_REFUSAL_REASONS = ("malformed", "rate_limited", "retained")


class _LiveGauges(Collector):
    """Values read at scrape time (devices online from the DB, refusals from the bridge's counters)."""

    def __init__(self, devices_online: Callable[[], int], mqtt_refused: Callable[[], Mapping[str, int]],
                 broker_connected: Callable[[], bool]) -> None:
        self._online, self._refused, self._connected = devices_online, mqtt_refused, broker_connected

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("edgefleet_devices_online", "Enrolled devices whose status is online",
                                value=self._online())
        refused = self._refused()
        yield GaugeMetricFamily("edgefleet_mqtt_malformed_messages", "Malformed MQTT messages dropped by the bridge",
                                value=refused.get("malformed", 0))
        by_reason = CounterMetricFamily("edgefleet_mqtt_refused_messages",
                                        "MQTT messages from devices the bridge refused, by reason: malformed, "
                                        "rate_limited (over the per-device rate), retained (retained where the "
                                        "protocol has none)", labels=["reason"])
        for reason in sorted(set(MQTT_REFUSAL_REASONS) | set(refused)):
            by_reason.add_metric([reason], refused.get(reason, 0))
        yield by_reason
        yield GaugeMetricFamily("edgefleet_broker_connected", "1 when the server's MQTT bridge is connected",
                                value=1.0 if self._connected() else 0.0)


class FleetMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages_in = Counter("edgefleet_mqtt_messages", "MQTT messages received from devices, by kind",
                                   ["kind"], registry=self.registry)
        self.ignored = Counter("edgefleet_mqtt_ignored_messages",
                               "Messages from unknown or decommissioned devices, ignored", ["kind"],
                               registry=self.registry)
        self.http_refused = Counter("edgefleet_http_refused_requests",
                                    "HTTP requests refused before reaching their route, by kind: enroll_address "
                                    "and enroll_token (rate limits, 429), body_too_large (413)", ["kind"],
                                    registry=self.registry)
        for kind in REFUSAL_KINDS:  # present at 0 from the start, so a rate() over them is defined
            self.http_refused.labels(kind)
        self.telemetry = Counter("edgefleet_telemetry_snapshots", "Telemetry snapshots by what ingest did: stored, "
                                 "ignored (unknown or decommissioned device); malformed ones are counted in "
                                 "edgefleet_mqtt_refused_messages{reason=\"malformed\"}", ["result"],
                                 registry=self.registry)
        self.telemetry_late = Counter("edgefleet_telemetry_late_snapshots", "Snapshots stored more than "
                                      "telemetry_late_s after their own time (forwarded from an agent's outbox)",
                                      registry=self.registry)
        for result in ("stored", "ignored"):
            self.telemetry.labels(result)

    def refused(self, kind: str) -> None:
        self.http_refused.labels(kind).inc()

    def watch(self, devices_online: Callable[[], int], mqtt_refused: Callable[[], Mapping[str, int]],
              broker_connected: Callable[[], bool]) -> None:
        self.registry.register(_LiveGauges(devices_online, mqtt_refused, broker_connected))

    def collect_from(self, collector: Collector) -> None:
        """Add a collector read at scrape time (fleet_server.device_metrics)."""
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)
