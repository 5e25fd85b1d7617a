"""Remote commands over MQTT: one reply per command, refusals with clear reasons."""

from __future__ import annotations

from datetime import timedelta

from edgefleet import protocol
from edgefleet.protocol import utcnow


def test_ping_replies_ok(device, probe):
    reply = probe.command("ping")
    assert reply["ok"] is True and reply["result"]["pong"] is True


def test_unknown_command_is_refused_with_the_known_names(device, probe):
    reply = probe.command("self_destruct")
    assert reply["ok"] is False
    assert "unknown command 'self_destruct'" in reply["error"] and "ping" in reply["error"]


def test_command_past_its_deadline_is_not_started(device, probe):
    reply = probe.command("restart_pipeline", deadline=utcnow() - timedelta(seconds=5))
    assert reply["ok"] is False and "deadline passed" in reply["error"]
    assert device.host.rebuilds == 1


def test_set_config_applies_and_get_config_reports_it(device, probe, agent_config):
    device.state.save_password("s3cret-password")
    reply = probe.command("set_config", args={"pipeline": {"score_threshold": 0.8}})
    assert reply["ok"] is True
    config = probe.command("get_config")["result"]
    assert config["pipeline"]["score_threshold"] == 0.8
    assert config["config_hash"] == reply["result"]["config_hash"]
    assert "s3cret" not in str(config)
    reported = probe.last(protocol.twin_reported_topic(agent_config.device_id),
                          lambda d: d["config_hash"] == reply["result"]["config_hash"])
    assert reported["last_error"] is None


def test_set_config_with_a_bad_value_is_refused(device, probe):
    before = device.twin.pipeline_config
    reply = probe.command("set_config", args={"pipeline": {"score_threshold": 7}})
    assert reply["ok"] is False and "score_threshold" in reply["error"]
    assert device.twin.pipeline_config == before


def test_restart_pipeline_rebuilds_and_counters_stay_monotonic(device, probe):
    probe.last(protocol.telemetry_topic(device.config.device_id), lambda d: d["frames_inferred"] > 0)
    before = device.host.stats().frames_inferred
    reply = probe.command("restart_pipeline")
    assert reply["ok"] is True and device.host.rebuilds == 2
    assert device.host.stats().frames_inferred >= before


def test_reboot_is_refused_unless_allowed(device, probe):
    reply = probe.command("reboot")
    assert reply["ok"] is False and "not allowed" in reply["error"]


def test_get_logs_returns_the_last_lines_of_the_agent_log(device, probe):
    device.state.log_path.write_text("".join(f"line {i}\n" for i in range(50)))
    reply = probe.command("get_logs", args={"lines": 3})
    assert reply["result"]["lines"] == ["line 47", "line 48", "line 49"]
    bad = probe.command("get_logs", args={"lines": "all"})
    assert bad["ok"] is False and "'lines'" in bad["error"]
