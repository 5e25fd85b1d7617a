"""`edgefleet agent run` as a user runs it: a real process, stopped with SIGTERM, says goodbye (offline)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from edgefleet import protocol
from tests.edge_agent.conftest import write_state


def test_agent_run_goes_online_and_sigterm_publishes_offline(agent_config, state_dir: Path, probe):
    write_state(state_dir, agent_config)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edgefleet", "agent", "run", "--state-dir", str(state_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            cwd=Path(__file__).resolve().parents[3])
    try:
        status = protocol.status_topic(agent_config.device_id)
        probe.last(status, lambda d: d["state"] == "online", timeout=30)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    offline = probe.last(status, lambda d: d["state"] == "offline")
    assert offline["reason"] == "agent stopped"
    assert "status offline published" in out.decode()
    assert state_dir.joinpath("agent.log").exists()


def test_agent_run_on_an_unenrolled_state_dir_says_so(tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgefleet", "agent", "run", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[3])
    assert result.returncode == 2
    assert "not enrolled" in result.stderr and "edgefleet agent enroll" in result.stderr
