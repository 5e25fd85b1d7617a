"""`edgefleet rollout ...` as a user runs it, against a whole server running in-process (HTTP only: the test
takes the scheduler's steps itself, so what the commands see does not depend on timing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgefleet.cli import cli
from fleet_server.rollout_scheduler import RolloutScheduler
from fleet_server.server import ServerHandle
from tests.fleet_server.live_server import CLI_ENV, running_server
from tests.fleet_server.model_packages import Packer

runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with running_server(tmp_path_factory.mktemp("rollout-cli") / "server", start_mqtt=False) as handle:
        yield handle


def rollout(server: ServerHandle, *args: str):  # noqa: ANN201 - click Result
    return runner.invoke(cli, ["rollout", *args, "--server", server.url, "--api-key", server.admin_key],
                         env=CLI_ENV)


def _publish(server: ServerHandle, tmp_path: Path, name: str, **flags: object) -> None:
    package = Packer.for_server(server.settings.signing_key_path(), tmp_path / "work").make(name=name, **flags)
    result = runner.invoke(cli, ["model", "publish", str(package), "--server", server.url, "--api-key",
                                 server.admin_key], env=CLI_ENV)
    assert result.exit_code == 0, result.output


def test_create_status_pause_resume_abort(server: ServerHandle, tmp_path: Path) -> None:
    _publish(server, tmp_path, "cli-roll")
    made = rollout(server, "create", "--model", "cli-roll:1.0.0", "--target", "tag=site=nowhere", "--canary", "10%",
                   "--waves", "3", "--max-failures", "5%", "--min-fps", "2", "--max-error-rate", "0.1", "--json")
    assert made.exit_code == 0, made.output
    view = json.loads(made.stdout)
    assert (view["canary_percent"], view["waves"], view["max_failure_percent"]) == (10.0, 3, 5.0)
    assert view["gates"]["min_fps"] == 2 and view["gates"]["max_error_rate"] == 0.1
    assert view["gates"]["max_p95_ms"] is not None  # not given: the server's default from the package's benchmark
    rid = str(view["id"])
    shown = rollout(server, "status", rid)
    assert shown.exit_code == 0 and "canary" in shown.stdout and "running" in shown.stdout
    assert "paused" in rollout(server, "pause", rid).stdout
    again = rollout(server, "pause", rid)
    assert again.exit_code == 1 and "cannot pause" in again.stderr
    assert "running" in rollout(server, "resume", rid).stdout
    assert json.loads(rollout(server, "abort", rid, "--json").stdout)["state"] == "aborted"
    watched = rollout(server, "status", rid, "--watch")
    assert watched.exit_code == 1 and "aborted" in watched.stdout


def test_watch_exits_0_once_it_succeeded(server: ServerHandle, tmp_path: Path) -> None:
    _publish(server, tmp_path, "cli-done")
    rid = json.loads(rollout(server, "create", "--model", "cli-done:1.0.0", "--target", "device=no-such-0000",
                             "--json").stdout)["id"]
    RolloutScheduler(server.fleet.db, server.fleet.publish_desired).tick()  # no devices: every wave passes
    watched = rollout(server, "status", str(rid), "--watch", "--json")
    assert watched.exit_code == 0 and json.loads(watched.stdout)["state"] == "succeeded"


def test_refusals_exit_1_bad_input_2_unreachable_3(server: ServerHandle, tmp_path: Path) -> None:
    _publish(server, tmp_path, "cli-flagged", flags=["int8 accuracy past the gate"])
    refused = rollout(server, "create", "--model", "cli-flagged:1.0.0")
    assert refused.exit_code == 1 and "not deployable" in refused.stderr
    forced = rollout(server, "create", "--model", "cli-flagged:1.0.0", "--force", "--json")
    assert forced.exit_code == 0 and json.loads(forced.stdout)["forced"] is True
    assert rollout(server, "create", "--model", "cli-flagged:1.0.0", "--target", "rack").exit_code == 2
    assert rollout(server, "create", "--model", "x:1", "--canary", "ten").exit_code == 2
    assert rollout(server, "status", "9999").exit_code == 1
    gone = runner.invoke(cli, ["rollout", "status", "1", "--server", "http://127.0.0.1:9", "--api-key", "efk_x"],
                         env=CLI_ENV)
    assert gone.exit_code == 3


def test_shadow_options_reach_the_rollout_and_bad_ones_exit_2(server: ServerHandle, tmp_path: Path) -> None:
    _publish(server, tmp_path, "cli-shadow")
    made = rollout(server, "create", "--model", "cli-shadow:1.0.0", "--target", "tag=site=nowhere",
                   "--shadow", "30s", "--min-agreement", "0.9", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["shadow"] == {"window_s": 30.0, "min_agreement": 0.9}
    minutes = rollout(server, "create", "--model", "cli-shadow:1.0.0", "--target", "tag=site=nowhere",
                      "--shadow", "2m", "--json")
    assert json.loads(minutes.stdout)["shadow"] == {"window_s": 120.0, "min_agreement": None}
    for bad in (["--shadow", "soon"], ["--shadow", "2h"], ["--shadow", "30s", "--min-agreement", "1.5"],
                ["--min-agreement", "0.9"], ["--shadow", "30s", "--wave-timeout", "20"]):
        result = rollout(server, "create", "--model", "cli-shadow:1.0.0", *bad)
        assert result.exit_code == 2, (bad, result.output)
