"""`edgefleet demo` is the newcomer's first contact: it must run end to end and stop by itself cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_demo_enrolls_agents_rolls_a_model_out_over_mqtt_halts_a_bad_one_and_exits_zero(tmp_path: Path) -> None:
    env = dict(os.environ, EDGEFLEET_STATE_DIR=str(tmp_path / "home"), PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet", "demo", "--duration", "1", "--devices", "2", "--port", "0",
         "--no-train", "--state-dir", str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=240,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:] + out[-3000:]
    assert re.search(r"server\s+http://127\.0\.0\.1:\d+", out)
    assert re.search(r"admin key\s+efk_", out)
    assert "all online over MQTT, no model yet: True" in out
    assert re.search(r"rollout 1: demo-colours 1\.0\.0 -> succeeded", out), out[-3000:]
    assert re.search(r"rollout 2: demo-colours 9\.9\.9-broken -> halted \(canary", out), out[-3000:]
    assert "failed its health check" in out
    assert out.count("demo-colours 1.0.0 │") >= 4  # every device runs the good model, after both rollouts
