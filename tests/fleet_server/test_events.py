"""The event hub behind the dashboard's live view: events published from any thread reach every open
subscription in order; a subscriber that falls behind loses events but is told so (resync) instead of drifting;
tickets for the browser's stream are single use and expire; closing the hub ends every stream."""

from __future__ import annotations

import asyncio
import threading

from edgefleet.protocol import Status
from fleet_server.events import RESYNC, EventHub, TicketGrant, is_closed


def test_events_from_another_thread_reach_each_subscriber_in_order() -> None:
    hub = EventHub()

    async def scenario() -> tuple[list[str], list[str]]:
        with hub.subscribe() as a, hub.subscribe() as b:
            assert hub.subscribers == 2
            thread = threading.Thread(target=lambda: [hub.publish("n", {"i": i}) for i in range(5)])
            thread.start()
            thread.join()
            got_a = [str((await a.next()).data["i"]) for _ in range(5)]
            got_b = [str((await b.next()).data["i"]) for _ in range(5)]
        return got_a, got_b

    got_a, got_b = asyncio.run(scenario())
    assert got_a == got_b == ["0", "1", "2", "3", "4"]
    assert hub.subscribers == 0  # leaving the block unsubscribes


def test_a_subscriber_that_falls_behind_is_told_to_resync_then_continues() -> None:
    hub = EventHub(queue_size=2)

    async def scenario() -> list[tuple[str, dict]]:
        with hub.subscribe() as sub:
            for i in range(5):
                hub.publish("n", {"i": i})
            await asyncio.sleep(0)  # let the loop deliver what was handed over
            got = [await sub.next() for _ in range(3)]
            hub.publish("n", {"i": 5})
            got.append(await sub.next())
        return [(e.kind, e.data) for e in got]

    assert asyncio.run(scenario()) == [("n", {"i": 0}), ("n", {"i": 1}), (RESYNC, {"lost": 3}), ("n", {"i": 5})]


def test_device_messages_become_device_events_and_bad_data_is_dropped_not_raised() -> None:
    hub = EventHub()

    async def scenario() -> list[tuple[str, dict]]:
        with hub.subscribe() as sub:
            hub.device_message("status", "cam-1", Status(state="offline", reason="lost"))
            hub.device_message("event", "cam-1", None)  # not streamed
            hub.publish("broken", 42)  # type: ignore[arg-type] - a publisher's bug must not raise
            hub.publish("last", {})
            return [((e := await sub.next()).kind, e.data) for _ in range(2)]

    (kind, data), (last, _) = asyncio.run(scenario())
    assert kind == "device.status" and data["device_id"] == "cam-1"
    assert data["status"]["state"] == "offline" and data["status"]["reason"] == "lost"
    assert last == "last"


def test_closing_the_hub_ends_every_stream_even_a_full_one() -> None:
    hub = EventHub(queue_size=1)

    async def scenario() -> bool:
        with hub.subscribe() as sub:
            hub.publish("n", {})
            hub.close()
            await asyncio.sleep(0)
            return is_closed(await sub.next())

    assert asyncio.run(scenario())


def test_tickets_are_single_use_and_expire() -> None:
    hub = EventHub()
    grant = TicketGrant(key_id=7, role="viewer")
    ticket = hub.tickets.issue(grant)
    assert hub.tickets.redeem(ticket) == grant
    assert hub.tickets.redeem(ticket) is None  # spent
    assert hub.tickets.redeem("made-up") is None
    expired = EventHub(ticket_ttl_s=0).tickets
    assert expired.redeem(expired.issue(grant)) is None
