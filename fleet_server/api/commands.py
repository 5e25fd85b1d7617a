"""Remote commands: send one to a device and wait for its reply (operator), list and read them (viewer).

`POST /devices/{id}/commands` answers 200 with the command once it is settled (`succeeded` / `failed` with the
device's reply, or `timed_out`), 202 while it waits `queued` for an offline device, 409 (`DeviceOffline`) for an
offline device when the caller chose `offline: "fail"`, 503 when the broker cannot take it. The wait holds no
thread: the route awaits the dispatcher's Future (fleet_server.command_dispatch).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from edgefleet.protocol import Command
from fleet_server.api.deps import DeviceId, FleetDep, OperatorKey, SessionDep, ViewerKey, reveals_secrets
from fleet_server.api.errors import responses
from fleet_server.db.models import CommandRow
from fleet_server.errors import Unavailable
from fleet_server.fleet import Fleet
from fleet_server.services import apikeys, commands
from fleet_server.services.views import shown

router = APIRouter(prefix="/devices/{device_id}/commands", tags=["commands"], responses=responses(401, 403, 404, 413))
RequestId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
MAX_TIMEOUT_S = 300.0
MAX_EXPIRES_S = 7 * 86400


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$",
                      description="ping, get_logs, get_config, set_config, restart_pipeline, reboot, diagnostics, "
                                  "snapshot, list_cameras, self_test, restart_agent")
    args: dict[str, Any] = Field(default_factory=dict, description="the command's arguments (at most 16 KiB)")
    timeout_s: float = Field(10.0, gt=0, le=MAX_TIMEOUT_S,
                             description="how long to wait for the reply; also the device's deadline to start it")
    offline: Literal["fail", "queue"] = Field("fail", description="an offline device: answer 409 now, or queue "
                                                                   "the command until it comes online")
    expires_s: int = Field(3600, ge=1, le=MAX_EXPIRES_S, description="a queued command not sent by then expires")

    @model_validator(mode="after")
    def _fits_the_protocol(self) -> "CommandRequest":
        try:
            Command(name=self.name, args=self.args)
        except ValidationError as exc:
            raise ValueError(f"args: {exc.errors()[0]['msg']}") from None
        return self


class CommandView(BaseModel):
    request_id: str
    device_id: str
    name: str
    args: dict[str, Any]
    caller: str
    state: str = Field(description="queued | sent | succeeded | failed | expired | timed_out")
    reply: dict[str, Any] | None = Field(description="the device's reply: ok, result (e.g. a snapshot's "
                                                     "jpeg_base64), error")
    error: str | None
    timeout_s: float
    created_at: datetime
    sent_at: datetime | None
    deadline: datetime | None
    expires_at: datetime | None
    finished_at: datetime | None


def view(row: CommandRow, *, reveal: bool = True) -> CommandView:
    return CommandView(request_id=row.id, device_id=row.device_id, name=row.name, args=shown(row.args, reveal),
                       caller=row.caller, state=row.state, reply=shown(row.reply, reveal),
                       error=shown(row.error, reveal), timeout_s=row.timeout_s, created_at=row.created_at,
                       sent_at=row.sent_at, deadline=row.deadline, expires_at=row.expires_at,
                       finished_at=row.finished_at)


def _submit(fleet: Fleet, device_id: str, body: CommandRequest, caller: str) -> tuple[str, Any]:
    """Store the command and, for an online device, send it; (request id, the Future of its reply or None)."""
    with fleet.db.session() as session:
        row, online = commands.create(session, device_id, name=body.name, args=body.args, caller=caller,
                                      timeout_s=body.timeout_s, offline=body.offline, expires_s=body.expires_s)
        request_id = row.id
    if not online:
        return request_id, None
    dispatcher = fleet.commands
    future = dispatcher.expect(request_id)
    if dispatcher.send_now(device_id, request_id, body.name, body.args, body.timeout_s):
        return request_id, future
    dispatcher.forget(request_id)
    if body.offline == "queue":
        return request_id, None  # the sweeper sends it once the broker is back
    with fleet.db.session() as session:
        commands.mark_unsent(session, request_id, "the MQTT broker was not reachable")
    raise Unavailable(f"the MQTT broker is not reachable: command {request_id} was not sent (send it with "
                      f"offline=queue to keep it until it can be)")


def _load(fleet: Fleet, device_id: str, request_id: str) -> CommandView:
    with fleet.db.session() as session:
        return view(commands.get_command(session, device_id, request_id))


@router.post("", response_model=CommandView, status_code=200, responses={
    **responses(409, 422, 503), 202: {"model": CommandView, "description": "queued until the device is online"}})
async def send_command(body: CommandRequest, fleet: FleetDep, key: OperatorKey, device_id: DeviceId,
                       response: Response) -> CommandView:
    """Send a command with a deadline and wait up to `timeout_s` for the device's reply; every command is stored
    and audited (`command.send`) with the caller."""
    request_id, future = await run_in_threadpool(_submit, fleet, device_id, body, apikeys.actor_of(key))
    if future is not None:
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), timeout=body.timeout_s)
        except asyncio.TimeoutError:
            await run_in_threadpool(fleet.commands.give_up, request_id, body.timeout_s)
        finally:
            fleet.commands.forget(request_id)  # a caller that went away leaves the command to the sweeper
    shown_view = await run_in_threadpool(_load, fleet, device_id, request_id)
    if shown_view.state == "queued":
        response.status_code = 202
    return shown_view


@router.get("", response_model=list[CommandView], responses=responses(422))
def list_commands(session: SessionDep, key: ViewerKey, device_id: DeviceId,
                  state: Annotated[str | None, Query(pattern=r"^[a-z_]{1,16}$")] = None,
                  limit: Annotated[int, Query(ge=1, le=1000, description="newest first")] = 50) -> list[CommandView]:
    """The device's commands, newest first, with their replies."""
    reveal = reveals_secrets(key)
    return [view(row, reveal=reveal) for row in commands.list_commands(session, device_id, state=state, limit=limit)]


@router.get("/{request_id}", response_model=CommandView, responses=responses(422))
def get_command(session: SessionDep, key: ViewerKey, device_id: DeviceId, request_id: RequestId) -> CommandView:
    return view(commands.get_command(session, device_id, request_id), reveal=reveals_secrets(key))
