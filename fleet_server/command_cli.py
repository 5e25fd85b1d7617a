"""`edgefleet devices cmd ID NAME [--arg k=v ...] [--timeout 10] [--queue] [--json]`: run a remote command on a
device through a running server (POST /devices/{id}/commands) and show its reply.

Exit codes: 0 the device answered ok (or, with --queue, the command is queued for an offline device); 1 the
device answered ok=false, or the server refused (offline without --queue, role too low, no such device);
2 bad input (an --arg that is not k=v, arguments the server refuses); 3 server or broker not reachable;
4 no reply in time (timed out, or expired while queued).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from fleet_server.cli import (JsonOpt, KeyFileOpt, KeyOpt, ServerOpt, StateOpt, devices_app, fail, given_api_key,
                              parse_duration)
from fleet_server.cli_output import console, print_json
from fleet_server.client import DEFAULT_SERVER, ClientError, FleetClient, resolve_api_key

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNREACHABLE, EXIT_NO_REPLY = 1, 2, 3, 4
HTTP_MARGIN_S = 15.0  # the server answers at most timeout_s after the request; the HTTP read may take this longer


def parse_args(pairs: list[str] | None) -> dict[str, Any]:
    """`k=v` pairs; each value is read as JSON when it is (5, true, {"a": 1}), else kept as text."""
    args: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} must look like key=value", param_hint="--arg")
        try:
            args[key.strip()] = json.loads(value)
        except ValueError:
            args[key.strip()] = value
    return args


def _exit_for(exc: ClientError) -> int:
    if exc.status in (0, 503):
        return EXIT_UNREACHABLE
    return EXIT_BAD_INPUT if exc.status == 422 else EXIT_FAILED


def _show(command: dict[str, Any], save: Path | None) -> None:
    state = command["state"]
    style = {"succeeded": "green", "queued": "cyan"}.get(state, "red")
    console.print(f"{escape(command['name'])} on {escape(command['device_id'])}: [{style}]{state}[/]  "
                  f"(request {command['request_id']})")
    reply = command.get("reply") or {}
    result = reply.get("result")
    if isinstance(result, dict) and "jpeg_base64" in result:
        result = {k: v for k, v in result.items() if k != "jpeg_base64"}
        console.print(f"JPEG {result.get('width')}x{result.get('height')}, {result.get('bytes')} bytes"
                      + (f" -> {save}" if save else " (--save FILE writes it)"))
    if result is not None:
        console.print_json(json.dumps(result, default=str))
    if command.get("error"):
        console.print(f"[red]{escape(command['error'])}[/]")


@devices_app.command("cmd")
def devices_cmd(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="the device")],
    name: Annotated[str, typer.Argument(help="ping, get_logs, get_config, set_config, restart_pipeline, reboot, "
                                             "diagnostics, snapshot, list_cameras, self_test, restart_agent")],
    arg: Annotated[list[str] | None, typer.Option("--arg", help="k=v argument (repeat); values are JSON or text")
                   ] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, max=300, help="seconds to wait for the reply")
                       ] = 10.0,
    queue: Annotated[bool, typer.Option("--queue", help="queue it if the device is offline (else refused)")
                     ] = False,
    expires: Annotated[str, typer.Option("--expires", help="a queued command not sent by then expires: 30m, 1h"
                                         )] = "1h",
    save: Annotated[Path | None, typer.Option("--save", help="write a snapshot's JPEG to this file")] = None,
    json_out: JsonOpt = False, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None,
    api_key_file: KeyFileOpt = None, state_dir: StateOpt = None,
) -> None:
    """Run a remote command on a device and show its reply (exit 0 ok, 1 failed or refused, 4 no reply in time)."""
    body = {"name": name, "args": parse_args(arg), "timeout_s": timeout, "offline": "queue" if queue else "fail",
            "expires_s": parse_duration(expires)}
    client = FleetClient(server, resolve_api_key(given_api_key(ctx, api_key, api_key_file), state_dir),
                         timeout=timeout + HTTP_MARGIN_S)
    try:
        command = client.post(f"/devices/{device_id}/commands", body)
    except ClientError as exc:
        fail(str(exc), _exit_for(exc))
    result = (command.get("reply") or {}).get("result")
    if save is not None and isinstance(result, dict) and "jpeg_base64" in result:
        save.write_bytes(base64.b64decode(result["jpeg_base64"]))
    print_json(command) if json_out else _show(command, save)
    state = command["state"]
    if state in ("timed_out", "expired"):
        raise typer.Exit(EXIT_NO_REPLY)
    if state == "failed":
        raise typer.Exit(EXIT_FAILED)
