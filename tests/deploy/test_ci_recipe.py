"""The continuous-delivery recipe, deploy/ci/deliver.sh, run for real against a running server (API, scheduler,
embedded broker, OTA) with one simulated device: a package flagged not deployable is stopped by the gate before
anything is published; a good one is published, rolled out and installed; one whose canary fails ends the script
with the rollout's halt. The GitHub Actions example is checked to run the script with what the script reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_agent.fleet.sim import SimulatedDevice, enroll_simulated
from fleet_server.server import ServerHandle
from tests.fleet_server.live_server import running_server
from tests.fleet_server.model_packages import Packer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "ci" / "deliver.sh"
WORKFLOW = ROOT / "deploy" / "ci" / "github-actions.yml"
EXIT_GATE, EXIT_ROLLOUT, EXIT_USAGE = 4, 5, 64
ROLLOUT = {"ROLLOUT_TARGET": "tag=site=ci", "ROLLOUT_CANARY": "50%", "ROLLOUT_WAVES": "1",
           "ROLLOUT_MAX_P95_MS": "60000", "ROLLOUT_WAVE_TIMEOUT": "120"}


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    with running_server(tmp_path / "server") as handle:
        yield handle


def deliver(server: ServerHandle | None, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEFLEET_", "ROLLOUT_", "TRAIN_"))}
    base |= {"EDGEFLEET_CMD": f"{sys.executable} -m edgefleet", "PYTHON": sys.executable,
             "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
             "EDGEFLEET_STATE_DIR": str(tmp_path / "ci-runner")}
    if server is not None:
        base |= {"EDGEFLEET_SERVER": server.url, "EDGEFLEET_API_KEY": server.admin_key}
    return subprocess.run(["bash", str(SCRIPT), *args], env=base | env, capture_output=True, text=True,
                          timeout=240)


def test_the_gate_publishing_and_the_rollout_are_driven_by_json_and_exit_codes(server: ServerHandle,
                                                                               tmp_path: Path) -> None:
    api, headers = f"{server.url}/api/v1", {"Authorization": f"Bearer {server.admin_key}"}
    packer = Packer.for_server(server.settings.signing_key_path(), tmp_path / "work")

    flagged = packer.make("0.9.0", int8=True, flags=["onnxruntime INT8 accuracy drops 3.00 points (97.00% -> "
                                                     "94.00%), more than the 1-point threshold"])
    refused = deliver(server, tmp_path, "--package", str(flagged), **ROLLOUT)
    assert refused.returncode == EXIT_GATE and "NOT deployable" in refused.stderr, refused.stderr
    assert "INT8 accuracy drops 3.00 points" in refused.stderr and refused.stdout == ""
    assert httpx.get(f"{api}/models", headers=headers).json() == []  # stopped before publishing
    unconfigured = deliver(None, tmp_path, "--package", str(flagged))
    assert unconfigured.returncode == EXIT_USAGE and "EDGEFLEET_SERVER" in unconfigured.stderr

    token = httpx.post(f"{api}/tokens", json={"uses": 1, "tags": {"site": "ci"}}, headers=headers).json()["token"]
    config = enroll_simulated(server.url, token, tmp_path / "agents", 1, prefix="ci")[0]
    agent = SimulatedDevice(config, tmp_path / "agents" / "ci-0000", fps=5, ota_block=4096).start()
    try:
        assert agent.wait_ready(30)
        good = deliver(server, tmp_path, "--package", str(packer.make("1.0.0")), **ROLLOUT)
        assert good.returncode == 0, good.stderr
        summary = json.loads(good.stdout.splitlines()[-1])
        assert summary["model"] == "tiny:1.0.0" and summary["state"] == "succeeded"
        published = httpx.get(f"{api}/models", headers=headers).json()
        assert [(m["name"], m["version"], m["sha256"]) for m in published] == [("tiny", "1.0.0", summary["sha256"])]
        rollout = httpx.get(f"{api}/rollouts/{summary['rollout']}", headers=headers).json()
        assert rollout["state"] == "succeeded" and rollout["target"] == "tag=site=ci"
        assert rollout["gates"]["max_p95_ms"] == 60000
        device = httpx.get(f"{api}/devices/{config.device_id}", headers=headers).json()
        assert device["reported"]["model"]["sha256"] == summary["sha256"]

        broken = packer.make("2.0.0", extra=b"\0" * 1000)  # signed and deployable, but no longer loads
        halted = deliver(server, tmp_path, "--package", str(broken), **ROLLOUT)
        assert halted.returncode == EXIT_ROLLOUT, halted.stderr
        summary = json.loads(halted.stdout.splitlines()[-1])
        assert summary["model"] == "tiny:2.0.0" and summary["state"] == "halted"
        assert "canary" in halted.stderr
    finally:
        agent.stop()


def test_the_github_actions_example_runs_the_script_with_the_variables_it_reads() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["deliver"]
    runs = [step["run"] for step in job["steps"] if "deliver.sh" in step.get("run", "")]
    assert len(runs) == 1 and "bash deploy/ci/deliver.sh" in runs[0] and "|" not in runs[0]  # its exit code counts
    script = SCRIPT.read_text()
    read = set(re.findall(r"\$\{([A-Z0-9_]+)", script))
    assert {"EDGEFLEET_SERVER", "EDGEFLEET_API_KEY"} <= set(job["env"]) and set(job["env"]) <= read
    assert job["env"]["EDGEFLEET_API_KEY"] == "${{ secrets.EDGEFLEET_API_KEY }}"
    assert "EDGEFLEET_SIGNING_KEY" in read and "EDGEFLEET_SIGNING_KEY" in json.dumps(job["steps"])
