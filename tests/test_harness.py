"""The test house itself: the skip-or-fail policy for missing services, the wait helper, the retained-message
sweep on the shared broker, and the service markers. Each of these guards the other tests, so each can fail."""

from __future__ import annotations

import threading

import pytest

from edgefleet import protocol as p
from tests import services
from tests.mqtt_client import Peer, retained_topics, sweep_retained, unique_id
from tests.waiting import wait_for


@pytest.mark.parametrize(("env", "fails"), [
    ({}, False),
    ({"CI": ""}, False),
    ({"CI": "false"}, False),
    ({"CI": "0"}, False),
    ({"CI": "true"}, True),
    ({"CI": "TRUE"}, True),
    ({"CI": "1"}, True),
    ({"CI": "yes"}, True),
    ({"GITHUB_ACTIONS": "true"}, False),  # only CI itself decides; CI services all set it
])
def test_a_missing_service_fails_only_in_ci(env: dict[str, str], fails: bool) -> None:
    assert services.missing_service_fails(env) is fails


def test_missing_service_skips_outside_ci_and_fails_in_ci_with_the_reason() -> None:
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL on 5432"):
        services.service_missing("no PostgreSQL on 5432", {})
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL on 5432.*CI is set"):
        services.service_missing("no PostgreSQL on 5432", {"CI": "true"})


def test_wait_for_returns_the_first_truthy_value() -> None:
    calls = iter([0, None, "", [3]])
    assert wait_for(lambda: next(calls), what="the list") == [3]


def test_wait_for_fails_the_test_with_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="timed out after 0.05s waiting for the impossible"):
        wait_for(lambda: False, 0.05, "the impossible")
    with pytest.raises(AssertionError, match="waiting for state 7"):
        wait_for(lambda: None, 0.05, lambda: "state 7", cond=threading.Condition())


def test_wait_for_wakes_on_a_notify() -> None:
    cond, box = threading.Condition(), []

    def produce() -> None:
        with cond:
            box.append("ready")
            cond.notify_all()

    threading.Thread(target=produce).start()
    assert wait_for(lambda: box and box[0], cond=cond) == "ready"


def test_the_sweep_clears_what_a_test_device_left_retained(mosquitto_port: int) -> None:
    device, bystander = unique_id("left"), unique_id("other")
    peer = Peer(mosquitto_port, unique_id("writer"))
    assert not peer.connect().is_failure
    try:
        peer.publish(p.status_topic(device), b"online", retain=True)
        peer.publish(p.twin_reported_topic(device), b"{}", retain=True)
        peer.publish(p.status_topic(bystander), b"online", retain=True)
        assert retained_topics(mosquitto_port, device) == sorted([p.status_topic(device),
                                                                  p.twin_reported_topic(device)])
        assert sweep_retained(mosquitto_port, device) == sorted([p.status_topic(device),
                                                                 p.twin_reported_topic(device)])
        assert retained_topics(mosquitto_port, device) == []
        assert retained_topics(mosquitto_port, bystander) == [p.status_topic(bystander)]  # not its prefix
    finally:
        peer.clear_retained(p.status_topic(bystander))
        peer.close()


def test_every_collected_test_that_uses_a_service_carries_its_marker(request: pytest.FixtureRequest) -> None:
    """`-m "not postgres and not mosquitto"` relies on these markers: a service fixture, or a fixture param named
    after the service (the broker and database variants), must come with the marker."""
    from tests.conftest import SERVICE_MARKERS

    unmarked = []
    for item in request.session.items:
        needs = {SERVICE_MARKERS[f] for f in getattr(item, "fixturenames", ()) if f in SERVICE_MARKERS}
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            needs |= {v for v in callspec.params.values() if v in ("mosquitto", "postgres")}
        unmarked += [f"{item.nodeid}: {n}" for n in sorted(needs) if item.get_closest_marker(n) is None]
    assert unmarked == []
