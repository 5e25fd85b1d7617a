"""Devices, packages and device reports for the rollout tests, all written through the server's own services
(the inventory's record_reported and record_telemetry are what the MQTT ingest calls)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from edgefleet.protocol import ModelRef, Telemetry, TwinReported
from fleet_server.db import Database, Device, ModelPackage
from fleet_server.rollout_scheduler import RolloutScheduler
from fleet_server.schemas import TwinPatch
from fleet_server.services import devices, rollouts, twin
from fleet_server.services.rollouts import RolloutCreate

OLD = ModelRef(name="det", version="1", sha256="a" * 64, size=1000)
NEW = ModelRef(name="det", version="2", sha256="b" * 64, size=2000)


def add_device(db: Database, device_id: str, tags: dict[str, str] | None = None, *,
               model: ModelRef | None = OLD) -> None:
    with db.session() as s:
        s.add(Device(id=device_id, tags=tags or {}, enrolled_at=datetime.now(timezone.utc), hardware={}))
    if model is not None:
        with db.session() as s:
            twin.patch_twin(s, device_id, TwinPatch(model=model), actor="test")


def add_package(db: Database, ref: ModelRef = NEW, *, deployable: bool = True,
                benchmark: dict[str, Any] | None = None) -> None:
    with db.session() as s:
        s.add(ModelPackage(name=ref.name, version=ref.version, sha256=ref.sha256, size=ref.size or 0,
                           precision="fp32", task="detection", deployable=deployable,
                           manifest={"flags": [] if deployable else ["int8 accuracy past its gate"],
                                     "benchmark": benchmark or {}},
                           uploaded_by="test", uploaded_at=datetime.now(timezone.utc)))


def create(db: Database, *, role: str = "operator", **spec: Any) -> int:
    body = {"model": f"{NEW.name}:{NEW.version}", **spec}
    with db.session() as s:
        return rollouts.create(s, RolloutCreate(**body), actor=f"test {role}", actor_role=role).id


def report(db: Database, device_id: str, *, model: ModelRef | None = NEW, ota_state: str | None = "installed",
           error: str | None = None, last_error: str | None = None, update: dict | None = None) -> None:
    """What the agent reports: the model it runs, its download's progress and how its last update ended."""
    props: dict[str, Any] = {} if update is None else {"update": update}
    if ota_state is not None:
        props["ota"] = {"sha256": NEW.sha256, "state": ota_state, "bytes": 2000 if ota_state == "installed" else 500,
                        "total": 2000, "percent": 100.0 if ota_state == "installed" else 25.0, "error": error}
    with db.session() as s:
        assert devices.record_reported(s, device_id, TwinReported(model=model, properties=props,
                                                                  last_error=last_error))


def telemetry(db: Database, device_id: str, *, fps: float, p95: float, dropped: int = 0) -> None:
    with db.session() as s:
        assert devices.record_telemetry(s, device_id, Telemetry(
            device_id=device_id, model_name=NEW.name, model_version=NEW.version, fps=fps, latency_ms_p95=p95,
            frames_captured=100, frames_dropped=dropped))


def states(db: Database, rollout_id: int) -> dict[str, str]:
    with db.session() as s:
        return {rd.device_id: rd.state for rd in rollouts.devices_of(s, rollout_id)}


def waves(db: Database, rollout_id: int) -> dict[str, int]:
    with db.session() as s:
        return {rd.device_id: rd.wave for rd in rollouts.devices_of(s, rollout_id)}


def rollout_state(db: Database, rollout_id: int) -> tuple[str, int, str | None]:
    with db.session() as s:
        r = rollouts.get_rollout(s, rollout_id)
        return r.state, r.current_wave, r.reason


def desired_model(db: Database, device_id: str) -> ModelRef | None:
    with db.session() as s:
        desired = twin.desired_of(s.get(Device, device_id).desired)
        return desired.model if desired else None


class Recorder:
    """The scheduler's publish callback: remembers which devices' desired twins it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, device_id: str) -> bool:
        self.sent.append(device_id)
        return True


def scheduler(db: Database) -> tuple[RolloutScheduler, Recorder]:
    recorder = Recorder()
    return RolloutScheduler(db, recorder), recorder
