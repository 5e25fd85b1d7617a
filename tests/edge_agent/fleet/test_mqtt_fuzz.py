"""Hostile MQTT input to a running agent (hypothesis): whatever reaches its link (random bytes, wrong JSON,
oversized payloads, other devices' topics) never raises, is refused and counted, and leaves what the agent runs
unchanged."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet import protocol as p
from tests.fuzz_messages import PAYLOADS, message, topics


def accepted_by_protocol(device_id: str, topic: str, payload: bytes) -> bool:
    try:
        parsed, _ = p.decode_for_topic(topic, payload)
    except p.ProtocolError:
        return False
    return parsed.device_id == device_id


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_messages_never_change_what_the_agent_runs(device, agent_config, data) -> None:
    own = agent_config.device_id
    topic = data.draw(topics(own, "someone-else-0001"))
    payload = data.draw(PAYLOADS)
    applied, rejected = device.twin.applied, device.link.rejected
    device.link._handle_message(device.link._client, None, message(topic, payload))  # noqa: SLF001 - as paho calls it
    if accepted_by_protocol(own, topic, payload):
        return  # a valid message is the agent's to act on (and out of scope here)
    assert device.link.rejected == rejected + 1
    assert device.twin.applied == applied
