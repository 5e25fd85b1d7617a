"""The live event stream the dashboard listens to: `POST /events/ticket` (viewer) then `GET /events?ticket=`.

`EventSource` cannot send headers, so the stream authenticates with a ticket: random, single use, valid for
`TICKET_TTL_S` seconds, bound to the key that asked for it (fleet_server.events says why not the key itself in
the URL). While a stream is open its key is checked again every `KEY_RECHECK_S`: a revoked key's stream ends
with an `expired` event. Viewers get camera passwords masked in every event, as in every other answer.

Each event has the hub's kind as its SSE `event:` name and a JSON object as `data:` (section 7 of DESIGN.md).
The first event is `hello` (with the role); `resync` means events were lost: reload what you show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from fleet_server.api.deps import FleetDep, ViewerKey
from fleet_server.api.errors import responses
from fleet_server.db import ApiKey
from fleet_server.errors import Unauthorized
from fleet_server.events import TicketGrant, is_closed
from fleet_server.fleet import Fleet
from fleet_server.services import apikeys
from fleet_server.services.views import shown

router = APIRouter(prefix="/events", tags=["events"])
KEY_RECHECK_S = 30.0
RETRY_MS = 3000  # how long a browser waits before it reconnects on its own


class Ticket(BaseModel):
    ticket: str = Field(description="pass as `GET /api/v1/events?ticket=...`; single use")
    expires_in_s: float


def _json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Error answers of the stream route: JSON like every other error. Given as a model, FastAPI would document
    them with the route's own media type (text/event-stream), which is not what is sent."""
    documented = {}
    for code, doc in responses(*codes).items():
        documented[code] = {**{k: v for k, v in doc.items() if k != "model"},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    return documented


@router.post("/ticket", response_model=Ticket, responses=responses(401, 403, 413))
def new_ticket(fleet: FleetDep, key: ViewerKey) -> Ticket:
    """A ticket to open one event stream with the caller's role."""
    ticket = fleet.events.tickets.issue(TicketGrant(key_id=key.id, role=key.role))
    return Ticket(ticket=ticket, expires_in_s=fleet.events.tickets.ttl_s)


def redeem(fleet: FleetDep, ticket: Annotated[str, Query(min_length=1, max_length=64)]) -> TicketGrant:
    """Checked before the stream starts, so a bad ticket is a plain 401 answer, not a broken stream."""
    grant = fleet.events.tickets.redeem(ticket)
    if grant is None:
        raise Unauthorized("unknown, used or expired event ticket: ask POST /api/v1/events/ticket for a new one")
    return grant


def _key_still_valid(fleet: Fleet, key_id: int) -> bool:
    with fleet.db.session() as session:
        key = session.get(ApiKey, key_id)
        return key is not None and key.revoked_at is None


@router.get("", response_class=EventSourceResponse, responses=_json_errors(401, 413, 422))
async def stream(fleet: FleetDep, grant: Annotated[TicketGrant, Depends(redeem)]
                 ) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: device.status, device.telemetry, device.reported, device.desired, command.reply,
    alert, rollout.progress (as each happens), `resync` when some were lost, `expired` when the key was revoked."""
    reveal = apikeys.RANK[grant.role] >= apikeys.RANK["operator"]
    with fleet.events.subscribe() as sub:
        yield ServerSentEvent(event="hello", data={"role": grant.role}, retry=RETRY_MS)
        recheck_at = time.monotonic() + KEY_RECHECK_S
        while True:
            try:
                event = await asyncio.wait_for(sub.next(), max(0.05, recheck_at - time.monotonic()))
            except TimeoutError:
                if not await anyio.to_thread.run_sync(_key_still_valid, fleet, grant.key_id):
                    yield ServerSentEvent(event="expired", data={"detail": "the API key was revoked"})
                    return
                recheck_at = time.monotonic() + KEY_RECHECK_S
                continue
            if is_closed(event):
                return
            yield ServerSentEvent(event=event.kind, id=str(event.id) if event.id else None,
                                  data=shown(event.data, reveal))
