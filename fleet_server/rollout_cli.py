"""`edgefleet rollout create|status|pause|resume|abort` (mounted lazily by edgefleet/cli.py): staged rollouts on a
running server, over HTTP, with the same key options as the other server commands.

Exit codes: 0 ok, 1 refused (a package not deployable without --force, a state that does not allow the change,
no such model or rollout, role too low), 2 bad input, 3 server not reachable. `status --watch` waits for the
rollout to end and exits 0 only when it succeeded (1 when it halted or was aborted), so a script can gate on it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from fleet_server.cli import JsonOpt, KeyFileOpt, KeyOpt, ServerOpt, StateOpt, fail, given_api_key
from fleet_server.cli_output import console, print_json
from fleet_server.client import DEFAULT_SERVER, ClientError, FleetClient, resolve_api_key, resolve_ca_file

rollout_app = typer.Typer(help="Roll a registry model out to devices in waves.", no_args_is_help=True,
                          add_completion=False)
FINAL = ("halted", "aborted", "succeeded")
WATCH_POLL_S = 1.0
_STYLE = {"succeeded": "green", "failed": "red", "timed_out": "red", "rolled_back": "yellow", "updating": "cyan",
          "pending": "dim", "running": "cyan", "paused": "yellow", "halted": "red", "aborted": "red"}


def _client(ctx: typer.Context, server: str, api_key: str | None, api_key_file: Path | None,
            state_dir: Path | None) -> FleetClient:
    return FleetClient(server, resolve_api_key(given_api_key(ctx, api_key, api_key_file), state_dir),
                       ca_file=resolve_ca_file(server, state_dir))


def _failed(exc: ClientError) -> NoReturn:
    fail(str(exc), 3 if exc.status == 0 else 2 if exc.status == 422 else 1)


def parse_percent(text: str) -> float:
    """'10%' or '10' -> 10.0."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a percentage like 10%") from None
    if not 0 <= value <= 100:
        raise typer.BadParameter(f"{text!r} is not between 0% and 100%")
    return value


def parse_seconds(text: str) -> float:
    """'30s', '2m', '1h' or '45' (seconds) -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    scale = units.get(text[-1:], None)
    try:
        value = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration like 30s, 2m or 45") from None
    if not 0 < value <= 3600:
        raise typer.BadParameter(f"{text!r} is not between 0 and 1h")
    return value


def _styled(state: str) -> str:
    return f"[{_STYLE.get(state, 'white')}]{state}[/]"


def render(rollout: dict[str, Any]) -> Group:
    """The rollout as a header, then each wave and its devices with progress bars."""
    model = rollout["model"]
    head = (f"rollout {rollout['id']}: {escape(model['name'])} {escape(model['version'])} -> "
            f"{escape(rollout['target'])}  {_styled(rollout['state'])}  {rollout['progress']:.0f}% done")
    if rollout.get("reason"):
        head += f"\n  {escape(rollout['reason'])}"
    table = Table(show_header=True, box=None, pad_edge=False)
    for column in ("wave", "device", "state", "progress", "", "reason"):
        table.add_column(column)
    for wave in rollout["wave_list"]:
        name = "canary" if wave["wave"] == 0 else f"wave {wave['wave']}"
        total = max(len(wave["devices"]), 1)
        table.add_row(f"[bold]{name}[/]", f"{wave['done']}/{len(wave['devices'])} done",
                      f"{wave['failed']} failed", ProgressBar(total=total, completed=wave["done"], width=30), "", "")
        for d in wave["devices"]:
            percent = d["progress"] or 0.0
            table.add_row("", escape(d["device_id"]), _styled(d["state"]),
                          ProgressBar(total=100, completed=percent, width=30), f"{percent:.0f}%",
                          escape(d["reason"] or ""))
    return Group(head, table)


@rollout_app.command("create")
def create(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", help="NAME:VERSION in the server's registry")],
    target: Annotated[str, typer.Option("--target", help="all | tag=K=V | device=ID")] = "all",
    canary: Annotated[str, typer.Option("--canary", help="share of the targets in the canary wave")] = "10%",
    waves: Annotated[int, typer.Option("--waves", min=1, max=100, help="waves after the canary")] = 3,
    max_failures: Annotated[str, typer.Option("--max-failures", help="a wave with more failures halts")] = "0%",
    wave_timeout: Annotated[int, typer.Option("--wave-timeout", min=1, help="seconds per device")] = 1800,
    no_rollback: Annotated[bool, typer.Option("--no-rollback", help="leave devices on the new model on a halt")
                           ] = False,
    window: Annotated[str | None, typer.Option("--window", help="device-local hours START-END, e.g. 1-5")] = None,
    shadow: Annotated[str | None, typer.Option("--shadow", help="run the new model beside the current one on live "
                                               "frames this long before switching, e.g. 30s")] = None,
    min_agreement: Annotated[float | None, typer.Option("--min-agreement", min=0.0, max=1.0, help="with --shadow: "
                                                        "below this agreement (0-1) a device does not switch")
                             ] = None,
    force: Annotated[bool, typer.Option("--force", help="roll out a package marked not deployable (admin)")] = False,
    min_fps: Annotated[float | None, typer.Option("--min-fps", min=0, help="health gate: a device must run at "
                                                  "least this fast on the new model")] = None,
    max_p95_ms: Annotated[float | None, typer.Option("--max-p95-ms", min=0, help="health gate: p95 latency "
                                                     "(default: 10x the package's benchmark)")] = None,
    max_error_rate: Annotated[float | None, typer.Option("--max-error-rate", min=0, max=1, help="health gate: "
                                                         "dropped / captured frames")] = None,
    json_out: JsonOpt = False, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None,
    api_key_file: KeyFileOpt = None, state_dir: StateOpt = None,
) -> None:
    """Start a staged rollout: a canary wave, then equal waves, each waiting for its devices to report the new
    model running within the gates."""
    body: dict[str, Any] = {"model": model, "target": target, "canary_percent": parse_percent(canary),
                            "waves": waves, "max_failure_percent": parse_percent(max_failures),
                            "wave_timeout_s": wave_timeout, "rollback_on_halt": not no_rollback, "force": force}
    gates = {"min_fps": min_fps, "max_p95_ms": max_p95_ms, "max_error_rate": max_error_rate}
    body |= {k: v for k, v in gates.items() if v is not None}  # unset: the server's defaults
    if window is not None:
        start, sep, end = window.partition("-")
        if not (sep and start.isdigit() and end.isdigit()):
            raise typer.BadParameter(f"{window!r} is not START-END hours like 1-5", param_hint="--window")
        body |= {"window_start_hour": int(start), "window_end_hour": int(end)}
    if min_agreement is not None and shadow is None:
        raise typer.BadParameter("needs --shadow too", param_hint="--min-agreement")
    if shadow is not None:
        body |= {"shadow_s": parse_seconds(shadow), "min_agreement": min_agreement}
    try:
        made = _client(ctx, server, api_key, api_key_file, state_dir).post("/rollouts", body)
    except ClientError as exc:
        _failed(exc)
    if json_out:
        print_json(made)
        return
    sizes = ", ".join(f"{len(w['devices'])}" for w in made["wave_list"])
    console.print(f"[green]rollout {made['id']} started[/]: {escape(model)} -> {escape(target)}, "
                  f"devices per wave (canary first): {sizes}")


@rollout_app.command("status")
def status(
    ctx: typer.Context, rollout_id: Annotated[int, typer.Argument(min=1)],
    watch: Annotated[bool, typer.Option("--watch", help="follow it until it ends (exit 1 unless it succeeded)")
                     ] = False,
    json_out: JsonOpt = False, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None,
    api_key_file: KeyFileOpt = None, state_dir: StateOpt = None,
) -> None:
    """Each wave and device of a rollout, with progress bars; --watch follows it to its end."""
    client = _client(ctx, server, api_key, api_key_file, state_dir)
    try:
        rollout = client.get(f"/rollouts/{rollout_id}")
        if watch and not json_out:
            with Live(render(rollout), console=console, refresh_per_second=4) as live:
                while rollout["state"] not in FINAL:
                    time.sleep(WATCH_POLL_S)
                    rollout = client.get(f"/rollouts/{rollout_id}")
                    live.update(render(rollout))
        while watch and rollout["state"] not in FINAL:
            time.sleep(WATCH_POLL_S)
            rollout = client.get(f"/rollouts/{rollout_id}")
    except ClientError as exc:
        _failed(exc)
    if json_out:
        print_json(rollout)
    elif not watch:
        console.print(render(rollout))
    if watch and rollout["state"] != "succeeded":
        raise typer.Exit(1)


def _change(ctx: typer.Context, rollout_id: int, action: str, json_out: bool, server: str, api_key: str | None,
            api_key_file: Path | None, state_dir: Path | None) -> None:
    try:
        rollout = _client(ctx, server, api_key, api_key_file, state_dir).post(f"/rollouts/{rollout_id}/{action}", {})
    except ClientError as exc:
        _failed(exc)
    print_json(rollout) if json_out else console.print(f"rollout {rollout_id}: {_styled(rollout['state'])}")


@rollout_app.command("pause")
def pause(ctx: typer.Context, rollout_id: Annotated[int, typer.Argument(min=1)], json_out: JsonOpt = False,
          server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None, api_key_file: KeyFileOpt = None,
          state_dir: StateOpt = None) -> None:
    """Start no more devices (those updating are still judged)."""
    _change(ctx, rollout_id, "pause", json_out, server, api_key, api_key_file, state_dir)


@rollout_app.command("resume")
def resume(ctx: typer.Context, rollout_id: Annotated[int, typer.Argument(min=1)], json_out: JsonOpt = False,
           server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None, api_key_file: KeyFileOpt = None,
           state_dir: StateOpt = None) -> None:
    """Continue a paused rollout."""
    _change(ctx, rollout_id, "resume", json_out, server, api_key, api_key_file, state_dir)


@rollout_app.command("abort")
def abort(ctx: typer.Context, rollout_id: Annotated[int, typer.Argument(min=1)], json_out: JsonOpt = False,
          server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None, api_key_file: KeyFileOpt = None,
          state_dir: StateOpt = None) -> None:
    """Stop a rollout for good; nothing is rolled back."""
    _change(ctx, rollout_id, "abort", json_out, server, api_key, api_key_file, state_dir)
