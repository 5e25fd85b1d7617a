"""`edgefleet sim`: N simulated agents (edge_agent.fleet.sim) over real MQTT connections, for scale tests."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from edge_agent.errors import EXIT_AGENT, exit_code_for
from edge_agent.fleet.sim import SimulatedDevice, enroll_simulated


def sim_command(
    devices: int = typer.Option(3, "--devices", "-n", min=1, help="How many simulated devices"),
    server: str = typer.Option("http://127.0.0.1:8080", "--server", help="Fleet server URL"),
    token: str = typer.Option(..., "--token", help="Enrollment token with at least --devices uses"),
    duration: float = typer.Option(0.0, "--duration", help="Seconds to run; 0 runs until Ctrl-C"),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Where the devices keep their state"),
    fps: float = typer.Option(5.0, "--fps", help="Synthetic frames per second per device"),
    telemetry_interval: float = typer.Option(5.0, "--telemetry-interval", help="Seconds between snapshots"),
) -> None:
    """Simulate N agents over real MQTT connections (enrolled through the real API)."""
    from edgefleet.paths import default_state_dir
    from edge_agent.errors import AgentError

    root = Path(state_dir) if state_dir else default_state_dir() / "sim"
    try:
        configs = enroll_simulated(server, token, root, devices)
    except AgentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_for(exc) or EXIT_AGENT) from None
    sims = []
    for config in configs:
        config = config.model_copy(update={"telemetry_interval_s": telemetry_interval})
        sims.append(SimulatedDevice(config, root / (config.name or config.device_id), fps=fps).start())
    typer.echo(f"{len(sims)} simulated device(s) running against {configs[0].broker_url}; Ctrl-C to stop")
    try:
        deadline = time.monotonic() + duration if duration > 0 else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(min(telemetry_interval, 1.0 if deadline is None else max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        for device in sims:
            device.stop("simulation ended")
    for device in sims:
        t = device.telemetry
        if t is not None:
            typer.echo(f"{device.config.device_id}: {t.frames_inferred} frames, {t.fps:.1f} fps, "
                       f"p50 {t.latency_ms_p50 or 0:.2f} ms, outbox {t.outbox_depth}")
