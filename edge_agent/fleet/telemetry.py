"""Telemetry snapshots (DESIGN.md 5) and result events: what the device tells the fleet about its work.

Counters are cumulative since the agent started, so the fleet can alert on silence (a counter that stops
moving) instead of inferring it from rates.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from edgefleet import protocol
from edgefleet.protocol import Event, Telemetry
from edge_agent.engine.interface import PipelineStats
from edge_agent.engine.postprocess.results import Classification, Detection, Result

log = logging.getLogger(__name__)


def read_temperature() -> float | None:
    """The hottest sensor the board reports, or None (VMs and most containers report nothing)."""
    try:
        import psutil

        sensors = getattr(psutil, "sensors_temperatures", None)
        readings = sensors() if sensors else {}
    except Exception:  # noqa: BLE001 - a sensor driver error is not worth a failed snapshot
        return None
    values = [entry.current for entries in (readings or {}).values() for entry in entries
              if entry.current is not None]
    return round(max(values), 1) if values else None


@dataclass
class TelemetryCollector:
    """Builds one :class:`Telemetry` per call. The psutil process handle keeps CPU % meaningful between calls."""

    device_id: str
    started_at: float = field(default_factory=time.monotonic)
    _process: object = None

    def __post_init__(self) -> None:
        try:
            import psutil

            self._process = psutil.Process()
            self._process.cpu_percent(None)  # the first call only primes the counter
        except Exception as exc:  # noqa: BLE001
            log.info("psutil unavailable: %s", exc)

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    def snapshot(self, stats: PipelineStats, *, model_name: str | None = None, model_version: str | None = None,
                 backend: str | None = None, device: str | None = None, camera_id: str | None = None,
                 outbox_depth: int = 0, outbox_dropped: int = 0) -> Telemetry:
        cpu = memory = None
        if self._process is not None:
            try:
                cpu = round(float(self._process.cpu_percent(None)), 1)
                memory = round(self._process.memory_info().rss / 2**20, 1)
            except Exception:  # noqa: BLE001
                pass
        return Telemetry(
            device_id=self.device_id, model_name=model_name, model_version=model_version, backend=backend,
            device=device, camera_id=camera_id, camera_state=stats.camera_state,
            frames_captured=stats.frames_captured, frames_inferred=stats.frames_inferred,
            frames_dropped=stats.frames_dropped, fps=max(0.0, stats.fps),
            latency_ms_p50=stats.latency_ms_p50, latency_ms_p95=stats.latency_ms_p95,
            latency_ms_p99=stats.latency_ms_p99, inference_ms_p50=stats.inference_ms_p50,
            inference_ms_p95=stats.inference_ms_p95, cpu_percent=cpu, memory_mb=memory,
            temperature_c=read_temperature(), outbox_depth=outbox_depth, outbox_dropped=outbox_dropped,
            uptime_s=round(self.uptime_s(), 3),
        )


class EventGate:
    """Turns inference results into events: over ``score_threshold`` -> detection/classification, top score
    under ``low_confidence_below`` -> low_confidence; at most one event per kind per ``min_interval_s``."""

    def __init__(self, min_interval_s: float = 1.0) -> None:
        self.min_interval_s = min_interval_s
        self._last: dict[str, float] = {}
        self.suppressed = 0

    def events(self, result: Result, config: protocol.PipelineConfig, camera: str) -> list[Event]:
        items = result.results
        if not items:
            return []
        out: list[Event] = []
        top = max(i.score for i in items)
        hits = [i for i in items if i.score >= config.score_threshold]
        frame = {"frame_index": result.frame_index, "latency_ms": result.latency_ms}
        if hits:
            kind = "detection" if isinstance(hits[0], Detection) else "classification"
            data = {**frame, "results": [_item(i) for i in hits[: config.top_k]]}
            out.append(Event(kind=kind, camera_id=camera, message=f"{hits[0].label} {hits[0].score:.2f}",
                             data=data))
        if top < config.low_confidence_below:
            out.append(Event(kind="low_confidence", camera_id=camera, message=f"top score {top:.2f}",
                             data={**frame, "results": [_item(i) for i in items[: config.top_k]]}))
        return [e for e in out if self._allow(e.kind)]

    def _allow(self, kind: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) < self.min_interval_s:
            self.suppressed += 1
            return False
        self._last[kind] = now
        return True


def _item(item: Classification | Detection) -> dict[str, Any]:
    out: dict[str, Any] = {"label": item.label, "score": round(float(item.score), 4)}
    if isinstance(item, Detection):
        out["box"] = [round(float(v), 1) for v in item.box]
    return out
