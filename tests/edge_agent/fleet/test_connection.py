"""The device's MQTT presence: online/offline status with a Last Will, and a retained reported twin."""

from __future__ import annotations

from edgefleet import protocol


def test_online_status_and_reported_twin_are_retained(device, probe, agent_config, mosquitto_port):
    from tests.edge_agent.conftest import FleetProbe

    dev_id = agent_config.device_id
    probe.last(protocol.status_topic(dev_id), lambda d: d["state"] == "online")
    probe.last(protocol.twin_reported_topic(dev_id))
    late = FleetProbe(dev_id, mosquitto_port)  # a server that connects later still sees both
    try:
        status = late.wait_for(lambda ms: [m for m in ms if m.topic == protocol.status_topic(dev_id) and m.retain])
        assert protocol.decode(protocol.Status, status[-1].payload).state == "online"
        reported = late.last(protocol.twin_reported_topic(dev_id))
        assert reported["config_hash"] == protocol.config_hash(device.twin.pipeline_config)
        assert reported["camera"] == "synthetic"
        assert reported["backend"] == "numpy"
    finally:
        late.close()


def test_last_will_marks_device_offline_when_connection_dies(device, probe, agent_config):
    status = protocol.status_topic(agent_config.device_id)
    probe.last(status, lambda d: d["state"] == "online")
    device.link.kill()
    offline = probe.last(status, lambda d: d["state"] == "offline", timeout=60)
    assert offline["reason"] == "connection lost"


def test_clean_stop_publishes_offline_status(agent_config, state_dir, probe):
    from edge_agent.fleet.sim import SimulatedDevice
    from tests.edge_agent.conftest import write_state

    write_state(state_dir, agent_config)
    dev = SimulatedDevice(agent_config, state_dir).start()
    status = protocol.status_topic(agent_config.device_id)
    probe.last(status, lambda d: d["state"] == "online")
    dev.stop("maintenance")
    assert probe.last(status, lambda d: d["state"] == "offline")["reason"] == "maintenance"


def test_telemetry_counts_frames_monotonically(device, probe, agent_config):
    topic = protocol.telemetry_topic(agent_config.device_id)
    first = probe.last(topic, lambda d: d["frames_inferred"] > 0)
    later = probe.last(topic, lambda d: d["frames_inferred"] > first["frames_inferred"])
    assert later["frames_captured"] >= first["frames_captured"]
    assert later["uptime_s"] > first["uptime_s"]
    assert later["backend"] == "numpy" and later["camera_id"] == "synthetic"
    assert later["memory_mb"] > 0
    assert device.telemetry is not None and device.telemetry.device_id == agent_config.device_id
