"""`edgefleet agent run` as a user runs it: a real process, stopped with SIGTERM, says goodbye (offline)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from edgefleet import protocol
from tests.edge_agent.conftest import write_state
from tests.waiting import wait_for


def test_agent_run_goes_online_and_sigterm_publishes_offline(agent_config, state_dir: Path, probe):
    write_state(state_dir, agent_config)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edgefleet", "agent", "run", "--state-dir", str(state_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            cwd=Path(__file__).resolve().parents[3])
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in iter(proc.stdout.readline, b"")])
    reader.start()
    try:
        status = protocol.status_topic(agent_config.device_id)
        probe.last(status, lambda d: d["state"] == "online", timeout=30)
        # it says it is running once its signal handlers are in place; a SIGTERM before that line kills it
        wait_for(lambda: any(b"Ctrl-C to stop" in line for line in lines), 30, "the agent's running line")
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(10)
    out = b"".join(lines)
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
