"""`edgefleet demo`: the whole system on embedded defaults, in one process, over real connections.

A fleet server (SQLite, embedded MQTT broker) starts; a model is trained on scikit-learn's digits and signed
(or, without the training extra, a small ONNX model is built and signed); an enrollment token is made through
the API; N agents enroll over HTTP and connect over MQTT with their own credentials, with no model. The package
is published to the server's model registry and rolled out: a canary, then the rest, each agent downloading it
over MQTT, checking it and reporting; the summary shows what each device reported. Then a package that loads but
fails its health check is rolled out: the canary halts the rollout and rolls back. Then it serves until Ctrl-C.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

# Piped output (CI logs, `| tee`) would otherwise be squeezed into 80 columns and the table truncated.
console = Console(width=None if Console().is_terminal else 160)


def _console_logs_at_cli_level() -> None:
    """The agents log INFO to their own files (what `get_logs` returns); the console keeps showing only what the
    command's -v asked for, so those lines do not break up the demo's tables."""
    import logging

    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(root.level)


def _port_or_free(port: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model_package(cache: Path, signing_key: Path, train: bool) -> Path:
    """A signed package: trained on digits when training is installed, else a small built ONNX model."""
    cached = sorted(cache.glob("**/*-int8.efpkg")) or sorted(cache.glob("**/*.efpkg"))
    if cached:
        console.print(f"[dim]using the model trained by an earlier demo run: {cached[0]}[/]")
        return cached[0]
    if train:
        try:
            from training.pipeline import TrainingOptions, run_training
        except ImportError as exc:
            console.print(f"[yellow]training is not installed ({exc.name}); building a small model instead[/]")
        else:
            console.rule("training a model on scikit-learn's digits")
            outcome = run_training(TrainingOptions(data="digits", out=cache, signing_key=signing_key, name="digits",
                                                   epochs=15, bench_runs=20, calibration_size=200))
            acc = outcome.summary.get("metrics", {}).get("accuracy")
            if acc is not None:
                console.print(f"test accuracy {acc:.3f}; packages in {outcome.run_dir}")
            return outcome.int8_package if outcome.summary.get("deployable_int8", True) else outcome.fp32_package
    from edgefleet.demo_model import build_demo_package

    return build_demo_package(cache, signing_key)


def _api(server_url: str, key: str):
    import httpx

    return httpx.Client(base_url=f"{server_url}/api/v1", headers={"X-API-Key": key}, timeout=30)


def _wait(predicate, timeout: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _summary(api, device_ids: list[str]) -> Table:
    table = Table(title="fleet, as reported over MQTT")
    for col in ("device", "status", "in sync", "model", "backend/device", "camera", "fps", "latency p50 ms",
                "inference p50 ms", "frames captured/inferred/dropped"):
        table.add_column(col)
    for device_id in device_ids:
        dev = api.get(f"/devices/{device_id}").json()
        rows = api.get(f"/devices/{device_id}/telemetry", params={"limit": 1}).json()
        tel: dict[str, Any] = rows[0] if rows else {}
        rep = dev.get("reported") or {}
        model = rep.get("model") or {}

        def num(name: str) -> str:
            value = tel.get(name)
            return "-" if value is None else f"{value:.1f}"

        table.add_row(
            device_id, dev["status"], str(dev["in_sync"]), f"{model.get('name', '-')} {model.get('version', '')}",
            f"{rep.get('backend') or '-'}/{rep.get('device') or '-'}", rep.get("camera") or "-", num("fps"),
            num("latency_ms_p50"), num("inference_ms_p50"),
            f"{tel.get('frames_captured', '-')}/{tel.get('frames_inferred', '-')}/{tel.get('frames_dropped', '-')}",
        )
    return table


def _roll_out(api, package: Path, title: str, devices: int) -> None:  # noqa: ANN001 - an httpx client
    """Publish ``package`` and roll it out to every device: one canary first, then the rest in one wave."""
    from edgefleet.demo_rollout import follow, publish, roll_out, rollout_table

    console.rule(title)
    view = publish(api, package)
    console.print(f"published {view['name']} {view['version']} ({view['size']} bytes, sha256 {view['sha256'][:12]})")
    canary = max(1.0, 100.0 / devices)
    rollout_id = roll_out(api, view["name"], view["version"], canary_percent=canary, waves=1)
    console.print(f"rollout {rollout_id}: canary {canary:.0f}% of {devices}, then one wave; delivered over MQTT")
    console.print(rollout_table(follow(api, rollout_id, console, timeout=240)))


def _broken_package(good: Path, cache: Path, signing_key: Path) -> Path:
    """A signed package that loads and runs, but whose outputs do not fit its labels (its health check fails)."""
    from edgefleet.demo_model import build_demo_package
    from models.package import read_manifest

    manifest = read_manifest(good)
    return build_demo_package(cache / "broken", signing_key, name=manifest.name, version="9.9.9-broken",
                              labels=["only", "three", "labels"])


def demo_command(
    duration: float = typer.Option(0.0, "--duration", help="Stop by itself after this many seconds (0: until Ctrl-C)"),
    devices: int = typer.Option(3, "--devices", "-n", min=1, max=50, help="How many agents to run"),
    port: int = typer.Option(8080, "--port", help="HTTP port; a free one is used when it is taken"),
    state_dir: Path = typer.Option(Path(".edgefleet/demo"), "--state-dir", help="Where the demo keeps its state"),
    train: bool = typer.Option(True, "--train/--no-train", help="Train the model on digits (else build a small one)"),
) -> None:
    """Run the whole system on embedded defaults: server, broker, trained model, agents with cameras."""
    from edge_agent.fleet.agent import Agent
    from edge_agent.fleet.enroll import enroll
    from edgefleet import paths
    from fleet_server.server import start_server_in_thread
    from fleet_server.settings import ServerSettings

    state_dir = state_dir.resolve()
    run_dir = state_dir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh fleet each run; the trained model is kept in cache/
    signing_key = paths.signing_key_path(state_dir)
    package = _model_package(state_dir / "cache", signing_key, train)

    console.rule("fleet server")
    settings = ServerSettings(state_dir=run_dir / "server", port=_port_or_free(port), embedded_broker_port=0,
                              signing_key_file=signing_key)
    server = start_server_in_thread(settings)
    agents: list[Agent] = []
    _console_logs_at_cli_level()
    try:
        console.print(f"server    [bold]{server.url}[/]  (API docs {server.url}/docs, dashboard {server.url}/)")
        console.print(f"broker    [bold]{server.broker_url}[/] (embedded, per-device credentials)")
        console.print(f"admin key [bold]{server.admin_key}[/]")
        api = _api(server.url, server.admin_key)
        token = api.post("/tokens", json={"uses": devices, "ttl_s": 600, "tags": {"site": "demo"}})
        token.raise_for_status()

        console.rule(f"enrolling {devices} agents")
        for i in range(devices):
            agent_dir = run_dir / f"agent-{i}"
            config = enroll(server.url, token.json()["token"], agent_dir, name=f"demo-cam-{i}", source="synthetic")
            config = config.model_copy(update={"telemetry_interval_s": 2.0})
            # log to the state dir, as `agent run` does, so `get_logs` from the dashboard has something to show
            agents.append(Agent(config, agent_dir, source="synthetic", log_to_file=True).start())
            console.print(f"enrolled {config.device_id} ({config.name}) -> {config.broker_url}")
        ids = [a.config.device_id for a in agents]
        online = _wait(lambda: all(api.get(f"/devices/{d}").json()["online"] for d in ids), 30)
        console.print(f"all online over MQTT, no model yet: {online}")
        pipeline = {"pipeline": {"score_threshold": 0.6, "telemetry_interval_s": 2.0, "max_fps": 15.0},
                    "camera": "synthetic", "properties": {"site": "demo", "zone": "entrance"}}
        for d in ids:
            api.patch(f"/devices/{d}/twin", json=pipeline).raise_for_status()
        _roll_out(api, package, "over-the-air rollout: canary, then the rest", len(ids))
        _wait(lambda: all(api.get(f"/devices/{d}/telemetry", params={"limit": 1}).json() for d in ids), 30)
        time.sleep(4.5)  # let a couple of telemetry periods pass so fps/latency describe the new model
        console.print(_summary(api, ids))
        broken = _broken_package(package, state_dir / "cache", signing_key)
        _roll_out(api, broken, "a package that loads but fails its health check", len(ids))
        console.print(_summary(api, ids))
        console.print(f"\nserving at [bold]{server.url}[/] with admin key [bold]{server.admin_key}[/]; "
                      + ("Ctrl-C to stop" if duration <= 0 else f"stopping in {duration:.0f}s"))
        deadline = time.monotonic() + duration if duration > 0 else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        for agent in agents:
            agent.stop()
        server.stop()
