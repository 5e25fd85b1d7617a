"""The health-checked A/B switch on the real engine (onnxruntime) with real signed packages over MQTT."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet import protocol
from edgefleet.protocol import PipelineConfig, TwinDesired
from edge_agent.engine.interface import PipelineStats
from edge_agent.fleet.agent import Agent
from edge_agent.fleet.health import HealthPolicy, watch_frames
from tests.edge_agent.conftest import write_state

CAMERA = "synthetic:64x48@30"
CONFIG = PipelineConfig(backend="onnxruntime", telemetry_interval_s=0.25, score_threshold=0.0)


class RecordingAgent(Agent):
    """The real agent, also keeping the frame index of every result its pipeline delivers."""

    def __init__(self, *args, **kwargs) -> None:
        self.indices: list[int] = []
        self._seen = threading.Lock()
        super().__init__(*args, **kwargs)

    def _on_result(self, result) -> None:
        with self._seen:
            self.indices.append(result.frame_index)
        super()._on_result(result)


def onnx_with_five_scores() -> bytes:
    """Loads and runs, but gives 5 scores where the manifest's decoding has 3 labels."""
    import numpy as np
    import onnx  # noqa: F401
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((64, 5), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["logits"])],
        "five", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def start_agent(agent_config, state_dir: Path) -> RecordingAgent:
    config = agent_config.model_copy(update={"source": CAMERA})
    write_state(state_dir, config)
    agent = RecordingAgent(config, state_dir, event_min_interval_s=0.2).start()
    assert agent.wait_ready()
    return agent


@pytest.fixture()
def agent(agent_config, state_dir: Path, probe) -> Iterator[RecordingAgent]:
    pytest.importorskip("edge_agent.engine.builder")
    agent = start_agent(agent_config, state_dir)
    yield agent
    agent.stop()


def desire(probe, dev: str, revision: int, ref, **properties) -> dict:
    probe.desire(TwinDesired(revision=revision, model=ref, pipeline=CONFIG, properties=properties))
    return probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == revision, timeout=30)


def test_a_good_update_swaps_in_place_with_results_flowing_and_reports_succeeded(agent, probe, packages,
                                                                                 agent_config):
    dev = agent_config.device_id
    packages.trust(agent.state)
    first = packages.cache(agent.state, packages.make("1"))
    assert desire(probe, dev, 1, first)["properties"]["update"] == {"sha256": first.sha256, "state": "succeeded",
                                                                    "reason": None}
    pipeline, rebuilds = agent.host._running.pipeline, agent.host.rebuilds
    before = len(agent.indices)
    second = packages.cache(agent.state, packages.make("2"))
    reported = desire(probe, dev, 2, second)
    assert reported["last_error"] is None, reported["last_error"]
    assert reported["model"]["version"] == "2" and reported["slot"] == "B"
    assert reported["properties"]["update"] == {"sha256": second.sha256, "state": "succeeded", "reason": None}
    # the same pipeline (camera never stopped) changed model in place, and the check saw live frames on it
    assert agent.host._running.pipeline is pipeline and agent.host.rebuilds == rebuilds and agent.host.swaps == 1
    with agent._seen:
        indices = list(agent.indices)
    assert len(indices) - before >= 10
    assert all(a < b for a, b in zip(indices, indices[1:]))  # one camera's frames, in order, never restarted


def test_a_model_that_loads_but_fails_its_check_is_rolled_back_and_the_old_one_keeps_running(
        agent, probe, packages, agent_config, state_dir):
    dev = agent_config.device_id
    packages.trust(agent.state)
    good = packages.cache(agent.state, packages.make("1"))
    desire(probe, dev, 1, good)
    bad = packages.cache(agent.state, packages.make("2", onnx=onnx_with_five_scores()))
    reported = desire(probe, dev, 2, bad)
    update = reported["properties"]["update"]
    assert update["sha256"] == bad.sha256 and update["state"] == "rolled_back"
    assert "health check" in update["reason"] and "5 scores for 3 labels" in update["reason"]
    assert reported["model"]["version"] == "1" and reported["slot"] == "A"
    assert "health check" in reported["last_error"]
    inferred = agent.host.stats().frames_inferred
    t = probe.last(protocol.telemetry_topic(dev), lambda d: d["frames_inferred"] > inferred + 5, timeout=20)
    assert t["model_version"] == "1" and agent.host.stats().frames_failed == 0

    agent.stop()  # the final state survives a restart, and the bad package is not tried again
    again = start_agent(agent_config, state_dir)
    try:
        reported = probe.last(protocol.twin_reported_topic(dev),
                              lambda d: d["properties"].get("update", {}).get("sha256") == bad.sha256
                              and d["model"] is not None, timeout=30)
        assert reported["properties"]["update"]["state"] == "rolled_back"
        assert reported["model"]["version"] == "1" and again.host.swaps == 0
    finally:
        again.stop()


def test_a_rollout_latency_budget_rolls_back_a_model_too_slow_for_it(agent, probe, packages, agent_config):
    dev = agent_config.device_id
    packages.trust(agent.state)
    desire(probe, dev, 1, packages.cache(agent.state, packages.make("1")))
    slow = packages.cache(agent.state, packages.make("2"))
    reported = desire(probe, dev, 2, slow, health={"max_latency_ms": 0.000001})
    update = reported["properties"]["update"]
    assert update["state"] == "rolled_back" and "over the budget of 1e-06 ms" in update["reason"]
    assert reported["model"]["version"] == "1"


def test_live_frame_errors_past_the_limit_fail_the_watch() -> None:
    counts = iter([PipelineStats(frames_inferred=5), PipelineStats(frames_inferred=7, frames_failed=1),
                   PipelineStats(frames_inferred=8, frames_failed=3)])
    result = watch_frames(lambda: next(counts), HealthPolicy(frames=10, max_errors=2), sleep=lambda _: None)
    assert not result.ok and result.errors == 3 and result.frames == 6 and "3 of the first 6" in result.reason


def test_the_health_block_overrides_the_benchmark_default(packages) -> None:
    from models.manifest import InputSpec, Manifest, Runtimes

    manifest = Manifest(name="m", version="1", task="classification", input=InputSpec(shape=[1, 1, 8, 8],
                        color_order="GRAY"), labels=["a"], runtimes=Runtimes(onnx="m.onnx"),
                        benchmark={"onnxruntime": {"median_ms": 2.0}, "host": {"cpu": "x"}})
    assert HealthPolicy.from_properties({}, manifest, "onnxruntime").max_latency_ms == 20.0
    policy = HealthPolicy.from_properties({"health": {"max_latency_ms": 5, "frames": 3, "max_errors": "x"}},
                                          manifest, "onnxruntime")
    assert (policy.max_latency_ms, policy.frames, policy.max_errors) == (5.0, 3, 0)
    assert HealthPolicy.from_properties(None, None).max_latency_ms is None
