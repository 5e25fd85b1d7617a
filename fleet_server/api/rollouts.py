"""Staged rollouts: start one (operator; forcing a package marked not deployable needs an admin), list and show
them with each wave's devices and download progress (viewer), pause, resume and abort (operator). The
scheduler (fleet_server.rollout_scheduler) moves them along; these routes only read and change the stored state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from fleet_server.api.deps import OperatorKey, SessionDep, ViewerKey
from fleet_server.api.errors import responses
from fleet_server.db.models import Device, Rollout, RolloutDevice
from fleet_server.services import apikeys, rollouts
from fleet_server.services.rollouts import RolloutCreate

router = APIRouter(prefix="/rollouts", tags=["rollouts"], responses=responses(401, 403, 413))
_NOT_HERE = {404: {**responses(404)[404], "description": "no rollout with this id"}}
RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class RolloutDeviceView(BaseModel):
    device_id: str
    state: str = Field(description="pending | updating | succeeded | failed | rolled_back | timed_out")
    reason: str | None
    progress: float | None = Field(description="download percent from the device's reported ota property")
    previous_model: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None


class WaveView(BaseModel):
    wave: int = Field(description="0 is the canary")
    devices: list[RolloutDeviceView]
    done: int
    failed: int


class RolloutSummary(BaseModel):
    id: int
    model: dict[str, Any] = Field(description="name, version, sha256 and size of the package")
    target: str
    canary_percent: float
    waves: int
    max_failure_percent: float
    wave_timeout_s: int
    rollback_on_halt: bool
    forced: bool
    window: dict[str, int] | None = Field(description="device-local start and end hour, or null")
    gates: dict[str, float | None] = Field(description="min_fps, max_p95_ms, max_error_rate")
    shadow: dict[str, float | None] | None = Field(description="window_s and min_agreement of the shadow "
                                                   "evaluation before each switch, or null")
    state: str = Field(description="running | paused | halted | aborted | succeeded")
    current_wave: int
    reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RolloutDetail(RolloutSummary):
    wave_list: list[WaveView] = Field(description="each wave with its devices")
    progress: float = Field(description="percent of the rollout's devices done")


def _summary(r: Rollout) -> dict[str, Any]:
    window = None if r.window_start_hour is None else {"start_hour": r.window_start_hour,
                                                       "end_hour": r.window_end_hour}
    return {"id": r.id, "model": {"name": r.model_name, "version": r.model_version, "sha256": r.model_sha256,
                                  "size": r.model_size},
            "target": r.target, "canary_percent": r.canary_percent, "waves": r.waves,
            "max_failure_percent": r.max_failure_percent, "wave_timeout_s": r.wave_timeout_s,
            "rollback_on_halt": r.rollback_on_halt, "forced": r.forced, "window": window,
            "gates": {"min_fps": r.min_fps, "max_p95_ms": r.max_p95_ms, "max_error_rate": r.max_error_rate},
            "shadow": None if r.shadow_s is None else {"window_s": r.shadow_s, "min_agreement": r.min_agreement},
            "state": r.state, "current_wave": r.current_wave, "reason": r.reason, "created_by": r.created_by,
            "created_at": r.created_at, "updated_at": r.updated_at, "finished_at": r.finished_at}


def _device_view(rd: RolloutDevice, device: Device | None, sha256: str) -> RolloutDeviceView:
    progress = 100.0 if rd.state == "succeeded" else rollouts.ota_progress(device, sha256) \
        if rd.state == "updating" else None
    return RolloutDeviceView(device_id=rd.device_id, state=rd.state, reason=rd.reason, progress=progress,
                             previous_model=rd.previous_model, started_at=rd.started_at,
                             finished_at=rd.finished_at)


def _detail(session: SessionDep, r: Rollout) -> RolloutDetail:
    rds = rollouts.devices_of(session, r.id)
    by_wave: dict[int, list[RolloutDeviceView]] = {wave: [] for wave in range(r.waves + 1)}
    for rd in rds:
        by_wave.setdefault(rd.wave, []).append(_device_view(rd, session.get(Device, rd.device_id), r.model_sha256))
    finals = rollouts.FINAL_DEVICE_STATES
    waves = [WaveView(wave=w, devices=views, done=sum(v.state in finals for v in views),
                      failed=sum(v.state in ("failed", "timed_out") for v in views))
             for w, views in sorted(by_wave.items())]
    done = sum(rd.state in finals for rd in rds)
    return RolloutDetail(**_summary(r), wave_list=waves, progress=round(100 * done / len(rds), 1) if rds else 100.0)


@router.post("", response_model=RolloutDetail, status_code=201, responses={
    **responses(400, 404, 409, 422),
    404: {**responses(404)[404], "description": "no model with this name and version in the registry"},
    409: {**responses(409)[409], "description": "the package is marked not deployable and force was not given"},
    403: {**responses(403)[403], "description": "role too low; force needs an admin key"}})
def create_rollout(body: RolloutCreate, session: SessionDep, key: OperatorKey) -> RolloutDetail:
    """Plan a canary wave and `waves` equal waves over the devices the target matches (later matching devices
    join while it runs); the scheduler starts the canary within about a second."""
    rollout = rollouts.create(session, body, actor=apikeys.actor_of(key), actor_role=key.role)
    session.commit()
    return _detail(session, rollout)


@router.get("", response_model=list[RolloutSummary], responses=responses(422))
def list_rollouts(session: SessionDep, _key: ViewerKey,
                  state: Annotated[str | None, Query(pattern="^(running|paused|halted|aborted|succeeded)$")] = None
                  ) -> list[RolloutSummary]:
    return [RolloutSummary(**_summary(r)) for r in rollouts.list_rollouts(session, state=state)]


@router.get("/{rollout_id}", response_model=RolloutDetail, responses={**_NOT_HERE, **responses(422)})
def get_rollout(session: SessionDep, _key: ViewerKey, rollout_id: RolloutId) -> RolloutDetail:
    """The rollout, each wave with its devices' states and download progress."""
    return _detail(session, rollouts.get_rollout(session, rollout_id))


def _change(session: SessionDep, key: OperatorKey, rollout_id: int, action: str) -> RolloutDetail:
    rollout = rollouts.change_state(session, rollout_id, action, actor=apikeys.actor_of(key))
    session.commit()
    return _detail(session, rollout)


_CHANGE_ANSWERS = {**_NOT_HERE, **responses(409, 422),
                   409: {**responses(409)[409], "description": "the rollout is not in a state that allows this"}}


@router.post("/{rollout_id}/pause", response_model=RolloutDetail, responses=_CHANGE_ANSWERS)
def pause_rollout(session: SessionDep, key: OperatorKey, rollout_id: RolloutId) -> RolloutDetail:
    """No more devices start; those already updating are still judged."""
    return _change(session, key, rollout_id, "pause")


@router.post("/{rollout_id}/resume", response_model=RolloutDetail, responses=_CHANGE_ANSWERS)
def resume_rollout(session: SessionDep, key: OperatorKey, rollout_id: RolloutId) -> RolloutDetail:
    return _change(session, key, rollout_id, "resume")


@router.post("/{rollout_id}/abort", response_model=RolloutDetail, responses=_CHANGE_ANSWERS)
def abort_rollout(session: SessionDep, key: OperatorKey, rollout_id: RolloutId) -> RolloutDetail:
    """Stop for good; nothing is rolled back."""
    return _change(session, key, rollout_id, "abort")
