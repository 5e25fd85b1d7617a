"""Desired twins change the running pipeline without a restart; what cannot be applied is refused and reported."""

from __future__ import annotations

from edgefleet import protocol
from edgefleet.protocol import PipelineConfig, TwinDesired


def _frames(probe, device_id: str, above: int = -1) -> int:
    t = probe.last(protocol.telemetry_topic(device_id), lambda d: d["frames_inferred"] > above)
    return t["frames_inferred"]


def test_desired_config_change_is_applied_without_restart_and_reported(device, probe, agent_config):
    dev = agent_config.device_id
    before = _frames(probe, dev, 0)
    pipeline = PipelineConfig(score_threshold=0.9, top_k=2, telemetry_interval_s=0.25, max_fps=25)
    probe.desire(TwinDesired(revision=7, pipeline=pipeline, camera="synthetic:lobby"))
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 7)
    assert reported["config_hash"] == protocol.config_hash(pipeline)
    assert reported["camera"] == "synthetic:lobby"
    assert reported["last_error"] is None
    after = _frames(probe, dev, before)
    assert after > before  # counters keep growing across the rebuild: the agent did not restart
    assert device.link.connects == 1
    camera = probe.last(protocol.telemetry_topic(dev), lambda d: d["camera_id"] == "synthetic:lobby")
    assert camera["frames_inferred"] > before


def test_agent_only_change_does_not_rebuild_the_pipeline(device, probe, agent_config):
    dev = agent_config.device_id
    probe.last(protocol.twin_reported_topic(dev))
    rebuilds = device.host.rebuilds
    pipeline = device.twin.pipeline_config.model_copy(update={"telemetry_interval_s": 0.2})
    probe.desire(TwinDesired(revision=1, pipeline=pipeline))
    probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 1)
    assert device.host.rebuilds == rebuilds


def test_unknown_camera_is_refused_and_previous_pipeline_keeps_running(device, probe, agent_config):
    dev = agent_config.device_id
    good = PipelineConfig(telemetry_interval_s=0.25)
    probe.desire(TwinDesired(revision=1, pipeline=good))
    probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 1)
    probe.desire(TwinDesired(revision=2, pipeline=PipelineConfig(top_k=1, telemetry_interval_s=0.25),
                             camera="/dev/video99"))
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 2)
    assert "/dev/video99" in reported["last_error"]
    assert reported["camera"] == "synthetic"
    assert reported["config_hash"] == protocol.config_hash(good)  # still the previous config
    before = _frames(probe, dev, 0)
    assert _frames(probe, dev, before) > before
    error = probe.last(protocol.events_topic(dev), lambda d: d["kind"] == "error")
    assert "revision 2 refused" in error["message"]


def test_bad_backend_value_is_refused_with_last_error(device, probe, agent_config):
    dev = agent_config.device_id
    probe.desire(TwinDesired(revision=3, pipeline=PipelineConfig(backend="tensorrt", telemetry_interval_s=0.25)))
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 3)
    assert "tensorrt" in reported["last_error"]
    assert reported["backend"] == "numpy"
    assert device.host.running


def test_missing_model_package_is_reported_and_pipeline_keeps_running(device, probe, agent_config):
    dev = agent_config.device_id
    sha = "ab" * 32
    probe.desire(TwinDesired(revision=4, model=protocol.ModelRef(name="m", version="1", sha256=sha),
                             pipeline=PipelineConfig(telemetry_interval_s=0.25)))
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 4)
    assert reported["last_error"] == (f"model package {sha} not available locally, and cannot be downloaded: the "
                                      "desired model gives no package size")
    assert reported["model"] is None
    before = _frames(probe, dev, 0)
    assert _frames(probe, dev, before) > before


def test_applied_desired_state_survives_an_agent_restart(agent_config, state_dir, probe):
    from edge_agent.fleet.sim import SimulatedDevice
    from tests.edge_agent.conftest import write_state

    write_state(state_dir, agent_config)
    pipeline = PipelineConfig(top_k=1, telemetry_interval_s=0.3)
    dev = SimulatedDevice(agent_config, state_dir).start()
    probe.desire(TwinDesired(revision=5, pipeline=pipeline, camera="synthetic:door"))
    probe.last(protocol.twin_reported_topic(agent_config.device_id), lambda d: d["desired_revision"] == 5)
    dev.stop()
    probe.publish(protocol.twin_desired_topic(agent_config.device_id), b"", retain=True)  # server forgot it
    again = SimulatedDevice(agent_config, state_dir).start()
    try:
        assert again.twin.camera == "synthetic:door"
        assert again.twin.reported().config_hash == protocol.config_hash(pipeline)
    finally:
        again.stop()


def test_malformed_desired_and_command_payloads_are_rejected_counted_and_reported(device, probe, agent_config):
    dev = agent_config.device_id
    probe.last(protocol.twin_reported_topic(dev))
    probe.send(protocol.twin_desired_topic(dev), b'{"v": 1, "revision": "many"}', retain=True)
    probe.publish(protocol.cmd_topic(dev, "bad1"), b"\xff\xfe not json")  # not even sealed
    probe.send(protocol.cmd_topic(dev, "bad2"), b'{"v": 1, "name": "Ping!"}')
    def errors(messages):
        found = [m.json() for m in messages if m.topic == protocol.events_topic(dev) and m.json()["kind"] == "error"]
        return found if len(found) >= 3 else None

    errors = probe.wait_for(errors, what="three error events")
    text = " ".join(e["message"] for e in errors)
    assert "TwinDesired" in text and "unsigned or malformed cmd" in text and "Command" in text
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: (d["last_error"] or "").startswith("rejected"))
    assert "rejected message on" in reported["last_error"]
    assert device.rejected_messages == 3 and device.link.rejected == 3
    assert probe.command("ping")["ok"] is True  # still alive and answering
