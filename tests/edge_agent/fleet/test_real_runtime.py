"""The fleet agent over the real runtime (edge_agent.engine.builder: camera source + onnxruntime), not the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet import protocol
from edgefleet.protocol import PipelineConfig, TwinDesired
from edge_agent.fleet.agent import Agent
from tests.edge_agent.conftest import write_state


@pytest.fixture()
def real_agent(agent_config, state_dir: Path, probe) -> Iterator[Agent]:
    pytest.importorskip("edge_agent.engine.builder")
    write_state(state_dir, agent_config.model_copy(update={"source": "synthetic:64x48@30"}))
    agent = Agent(agent_config.model_copy(update={"source": "synthetic:64x48@30"}), state_dir,
                  event_min_interval_s=0.2).start()
    assert agent.wait_ready()
    yield agent
    agent.stop()


def test_agent_without_a_model_reports_itself_idle_until_one_is_desired(real_agent, probe, packages, agent_config):
    dev = agent_config.device_id
    reported = probe.last(protocol.twin_reported_topic(dev))
    assert reported["model"] is None and reported["last_error"] is None
    packages.trust(real_agent.state)
    ref = packages.cache(real_agent.state, packages.make("1"))
    probe.desire(TwinDesired(revision=1, model=ref,
                             pipeline=PipelineConfig(backend="onnxruntime", telemetry_interval_s=0.25,
                                                     score_threshold=0.0)))
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 1)
    assert reported["last_error"] is None, reported["last_error"]
    assert reported["backend"] == "onnxruntime" and reported["device"] == "CPU"
    assert reported["slot"] == "A"
    t = probe.last(protocol.telemetry_topic(dev), lambda d: d["frames_inferred"] > 5, timeout=20)
    assert t["model_name"] == "tiny" and t["backend"] == "onnxruntime" and t["inference_ms_p50"] is not None
    event = probe.last(protocol.events_topic(dev), lambda d: d["kind"] == "classification")
    assert event["data"]["results"][0]["label"] in ("r", "g", "b")


def test_unsupported_camera_is_refused_even_before_a_model_arrives(real_agent, probe, agent_config):
    dev = agent_config.device_id
    probe.desire(TwinDesired(revision=1, camera="ftp://camera.example/stream"))
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 1)
    assert "ftp://" in reported["last_error"]
    assert reported["camera"] == "synthetic:64x48@30"


def test_hot_plug_news_from_the_runtime_reaches_the_fleet_as_a_camera_event(real_agent, probe, agent_config):
    from edge_agent.engine.discovery import CameraEvent

    assert real_agent.factory.on_camera_event == real_agent._on_camera_event  # the runtime reports to the agent
    real_agent.factory.on_camera_event(CameraEvent("camera_removed", "serial:CAM-A",
                                                   "camera serial:CAM-A removed (/dev/video3)",
                                                   {"devnode": "/dev/video3", "serial": "CAM-A"}))
    event = probe.last(protocol.events_topic(agent_config.device_id), lambda d: d["kind"] == "camera")
    assert event["camera_id"] == "serial:CAM-A" and event["data"]["serial"] == "CAM-A"
    assert "removed" in event["message"]
