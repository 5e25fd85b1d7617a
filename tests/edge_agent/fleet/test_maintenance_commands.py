"""Remote maintenance on the agent, over MQTT: diagnostics, snapshot, list_cameras, self_test, restart_agent, and
the rules every command follows (a request id runs once, even across a restart; arguments are checked)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefleet import protocol
from edgefleet.protocol import PipelineConfig, TwinDesired
from edge_agent.errors import EXIT_RESTART
from edge_agent.fleet.agent import Agent
from edge_agent.fleet.sim import SimulatedDevice
from tests.edge_agent.conftest import write_state


def test_diagnostics_reports_versions_machine_and_recent_errors_with_secrets_masked(tmp_path, mosquitto_port, probe,
                                                                                  agent_config):
    config = agent_config.model_copy(update={"server_url": "http://admin:hunter2@127.0.0.1:9"})
    write_state(tmp_path / "agent", config)
    device = SimulatedDevice(config, tmp_path / "agent", fps=20).start()
    try:
        assert device.wait_ready(10)
        logging.getLogger("edge_agent.camera").warning("camera rtsp://cam:pa55word@10.0.0.7/live lost")
        reply = probe.command("diagnostics")
    finally:
        device.stop()
    assert reply["ok"] is True, reply
    found = reply["result"]
    assert found["versions"]["agent"] == "0.1.0-sim" and found["versions"]["onnxruntime"]
    assert found["versions"]["os"]["system"]
    assert "hunter2" not in str(found) and "pa55word" not in str(found)
    assert found["config"]["agent"]["server_url"] == "http://admin:***@127.0.0.1:9"
    assert any("rtsp://cam:***@10.0.0.7" in e["message"] for e in found["recent_errors"])
    machine = found["machine"]
    assert machine["memory"]["total_mb"] > 0 and machine["disk"]["free_mb"] > 0 and machine["cpu_count"] >= 1
    assert "CPU" in found["inference"]["backends"]["onnxruntime"]
    assert "cameras" in found["cameras"] or "error" in found["cameras"]


def test_snapshot_is_a_jpeg_of_the_latest_frame_within_the_size_cap(device, probe):
    probe.last(protocol.telemetry_topic(device.config.device_id), lambda d: d["frames_inferred"] > 0)
    reply = probe.command("snapshot")
    assert reply["ok"] is True, reply
    shot = reply["result"]
    jpeg = base64.b64decode(shot["jpeg_base64"])
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) == shot["bytes"] <= 200_000
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (shot["height"], shot["width"]) == (48, 64)
    assert shot["results"][0]["label"] in ("red", "green", "blue") and shot["content_type"] == "image/jpeg"
    too_big = probe.command("snapshot", args={"max_bytes": 2_000_000})
    assert too_big["ok"] is False and "bad arguments for snapshot: 'max_bytes'" in too_big["error"]


def test_list_cameras_answers_with_what_udev_sees_and_the_camera_in_use(device, probe):
    reply = probe.command("list_cameras")
    assert reply["ok"] is True, reply
    assert isinstance(reply["result"]["cameras"], list) and reply["result"]["current"] == device.twin.camera


def test_arguments_are_checked_against_each_commands_schema(device, probe):
    extra = probe.command("ping", args={"verbose": True})
    assert extra["ok"] is False and "bad arguments for ping: 'verbose': Extra inputs are not permitted" in extra["error"]
    wrong = probe.command("self_test", args={"runs": 0})
    assert wrong["ok"] is False and "'runs'" in wrong["error"]


def test_a_redelivered_request_id_runs_once_and_gets_the_same_reply(device, probe):
    first = probe.command("restart_pipeline", request_id="same-request-1")
    assert first["ok"] is True and device.host.rebuilds == 2
    replies = _resend(probe, device.config.device_id, "same-request-1", "restart_pipeline")
    assert replies[0] == replies[1] and device.host.rebuilds == 2
    assert device.commands.duplicates == 1


def test_restart_agent_answers_then_exits_with_the_restart_code_and_a_redelivery_after_restart_does_not_loop(
        tmp_path, agent_config, probe):
    state = tmp_path / "agent"
    write_state(state, agent_config)
    device = SimulatedDevice(agent_config, state, fps=5).start()
    try:
        assert device.wait_ready(10)
        reply = probe.command("restart_agent", request_id="restart-1")
        assert reply == {**reply, "ok": True, "result": {"restarting": True, "exit_code": EXIT_RESTART}}
        assert device._stop.wait(10) and device.exit_code == EXIT_RESTART
    finally:
        device.stop()
    again = SimulatedDevice(agent_config, state, fps=5).start()  # what the service manager starts
    try:
        assert again.wait_ready(10)
        replies = _resend(probe, agent_config.device_id, "restart-1", "restart_agent")  # handed over once more
        assert replies[1] == replies[0] and again.exit_code is None and again.commands.duplicates == 1
    finally:
        again.stop()


def _resend(probe, device_id: str, request_id: str, name: str) -> list[dict]:
    """Publish the command with a request id already answered once; both replies."""
    topic = protocol.cmd_reply_topic(device_id, request_id)
    probe.send(protocol.cmd_topic(device_id, request_id), protocol.Command(name=name).encode())
    probe.wait_for(lambda msgs: len([m for m in msgs if m.topic == topic]) >= 2, what="the second reply")
    return [m.json() for m in probe.on(topic)]


@pytest.fixture()
def engine_agent(agent_config, state_dir: Path, probe, packages) -> Iterator[Agent]:
    """The real agent (camera source + onnxruntime) running the tiny package from a desired twin."""
    config = agent_config.model_copy(update={"source": "synthetic:1280x720@15"})
    state = write_state(state_dir, config)
    packages.trust(state)
    agent = Agent(config, state_dir, event_min_interval_s=0.2).start()
    assert agent.wait_ready()
    agent.test_ref = packages.cache(state, packages.make("1"))
    agent.bad_ref = packages.cache(state, packages.make("2", onnx=_nan_onnx()))
    yield agent
    agent.stop()


def _nan_onnx() -> bytes:
    """The tiny classifier with a square root of negative numbers at its end: it loads, runs and decodes (the
    update health check passes it) but every score is NaN, which only a look at the outputs catches."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.full((64, 3), -1.0, dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["neg"]),
         helper.make_node("Sqrt", ["neg"], ["logits"])],
        "nan", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _run(probe, agent, ref, revision: int) -> None:
    probe.desire(TwinDesired(revision=revision, model=ref, pipeline=PipelineConfig(backend="onnxruntime")))
    reported = probe.last(protocol.twin_reported_topic(agent.config.device_id),
                          lambda d: d["desired_revision"] == revision)
    assert reported["model"]["sha256"] == ref.sha256, reported


def test_real_engine_self_test_snapshot_downscale_and_a_model_that_emits_nan(engine_agent, probe):
    _run(probe, engine_agent, engine_agent.test_ref, 1)
    passed = probe.command("self_test", args={"runs": 3})
    assert passed["ok"] is True, passed
    report = passed["result"]
    assert report["backend"] == "onnxruntime" and report["input"] == "synthetic" and report["runs"] == 3
    verdicts = {c["check"]: c["ok"] for c in report["checks"]}
    assert verdicts.items() >= {"finite": True, "batch": True, "labels": True, "probabilities": True}.items()
    assert any(c["check"] == "softmax_output" and c.get("warning") for c in report["checks"])  # tiny emits logits

    probe.last(protocol.telemetry_topic(engine_agent.config.device_id), lambda d: d["frames_inferred"] > 0)
    small = probe.command("snapshot", args={"max_bytes": 5_000})["result"]
    assert small["bytes"] <= 5_000 and small["width"] < 1280 and small["source_size"] == [1280, 720]

    _run(probe, engine_agent, engine_agent.bad_ref, 2)
    failed = probe.command("self_test", args={"runs": 1})
    assert failed["ok"] is False and "finite (an output holds NaN or inf)" in failed["error"], failed
    assert failed["result"]["passed"] is False
