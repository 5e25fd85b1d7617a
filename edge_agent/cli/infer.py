"""`edgefleet agent infer`: verify a signed package, run it on a camera locally, show or print the results.

No server is involved. stdout carries only results (`--json`: one JSON object per line), everything else (the
backend choice and why, live status, the summary, errors) goes to stderr, so the output can be piped."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import typer

log = logging.getLogger(__name__)


class _Counter:
    """Counts results, remembers the newest, and says when ``limit`` results were seen."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.count = 0
        self.latest = None
        self.done = threading.Event()

    def accept(self) -> bool:
        """Whether this result is within the limit (results in flight past it are not shown)."""
        if self.limit is not None and self.count >= self.limit:
            return False
        self.count += 1
        if self.limit is not None and self.count >= self.limit:
            self.done.set()
        return True


def _json_line(result, source: str, model: str) -> str:
    data = result.to_dict()
    data["inference_ms"] = round(data["inference_ms"], 3)
    data["latency_ms"] = round(data["latency_ms"], 3)
    data["ts"] = round(time.time(), 3)
    data["source"], data["model"] = source, model
    for item in data["results"]:
        item["score"] = round(item["score"], 5)
        if "box" in item:
            item["box"] = [round(v, 1) for v in item["box"]]
    return json.dumps(data, separators=(",", ":"))


def _status_line(stats) -> str:
    p50 = f"{stats.latency_ms_p50:.1f}" if stats.latency_ms_p50 is not None else "-"
    inf = f"{stats.inference_ms_p50:.1f}" if stats.inference_ms_p50 is not None else "-"
    return (f"{stats.fps:6.1f} fps  latency p50 {p50} ms  inference p50 {inf} ms  "
            f"frames {stats.frames_inferred}/{stats.frames_captured} (dropped {stats.frames_dropped})  "
            f"camera {stats.camera_state}")


def _table(stats, latest):
    from rich.table import Table

    table = Table(title=_status_line(stats), title_justify="left", show_edge=False)
    table.add_column("frame")
    table.add_column("label")
    table.add_column("score", justify="right")
    table.add_column("box")
    if latest is not None:
        for item in latest.results:
            box = " ".join(f"{v:.0f}" for v in item.box) if hasattr(item, "box") else ""
            table.add_row(str(latest.frame_index), item.label, f"{item.score:.3f}", box)
    return table


def infer_command(
    model: Path = typer.Option(..., "--model", help="Signed model package (.efpkg)", exists=False),
    source: str = typer.Option(..., "--source", help="synthetic[:WxH@FPS], a video file, /dev/videoN, usb:N, rtsp://"),
    backend: str | None = typer.Option(None, "--backend",
                                       help="onnxruntime | openvino (default: best for the package)"),
    device: str | None = typer.Option(None, "--device", help="CPU | GPU | NPU | AUTO (default: best available)"),
    key: Path | None = typer.Option(None, "--key", help="Trusted model-signing public key (PEM); default: the "
                                                        "state dir's keys/model-signing.pub.pem"),
    json_out: bool = typer.Option(False, "--json", help="Write one JSON result per line to stdout"),
    save_video: Path | None = typer.Option(None, "--save-video", help="Write annotated frames to this .mp4/.avi"),
    duration: float | None = typer.Option(None, "--duration", min=0.0,
                                          help="Stop after this many seconds (0: no limit)"),
    frames: int | None = typer.Option(None, "--frames", min=1, help="Stop after this many results"),
    top_k: int = typer.Option(3, "--top-k", min=1, max=100, help="Classes shown per frame"),
    max_fps: float | None = typer.Option(None, "--max-fps", min=0.01, help="Infer at most this many frames a second"),
    loop: bool = typer.Option(False, "--loop", help="Loop a video file instead of stopping at its end"),
) -> None:
    """Run a model package on a camera or video locally and show fps, latency and results live."""
    from edge_agent.errors import exit_code_for

    err = _stderr_console()
    try:
        _run(model, source, backend, device, key, json_out, save_video, duration, frames, top_k, max_fps, loop, err)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            raise
        err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
        raise SystemExit(code) from None


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)  # messages stay one line each, whatever the width


def _run(model: Path, source: str, backend, device, key, json_out, save_video, duration, frames, top_k, max_fps,
         loop, err) -> None:
    from edgefleet.paths import default_state_dir, signing_public_key_path
    from edgefleet.protocol import PipelineConfig
    from edge_agent.errors import ConfigError
    from edge_agent.engine.render import VideoSink
    from edge_agent.engine.builder import build_pipeline
    from edge_agent.engine.sources import plugin_for
    from models.errors import PackageNotFound, SignatureError
    from models.package import unpack

    key_path = key or signing_public_key_path(default_state_dir())
    if not key_path.is_file():
        raise SignatureError(f"no trusted model-signing public key at {key_path}: pass --key PUBKEY.pem (or "
                             "enroll this device, which stores the fleet's key)")
    if not model.is_file():
        raise PackageNotFound(f"no model package at {model}")
    try:
        config = PipelineConfig(backend=backend, device=device, top_k=top_k, max_fps=max_fps)
    except ValueError as exc:
        raise ConfigError(f"bad option: {exc}") from None
    video = VideoSink(save_video) if save_video else None

    with tempfile.TemporaryDirectory(prefix="edgefleet-infer-") as tmp:
        model_dir = Path(tmp) / "model"
        manifest = unpack(model, model_dir, key_path)  # refuses unsigned, mis-signed or altered packages
        err.print(f"model {manifest.name} {manifest.version} ({manifest.task}, {manifest.precision}) verified "
                  f"with {key_path}", highlight=False)
        counter = _Counter(frames)
        live = not json_out and err.is_terminal
        name = f"{manifest.name}:{manifest.version}"
        out = sys.stdout

        def sink(result) -> None:
            if not counter.accept():
                return
            counter.latest = result
            try:
                if json_out:
                    out.write(_json_line(result, source, name) + "\n")
                    out.flush()
                elif not live:
                    top = ", ".join(f"{r.label} {r.score:.2f}" for r in result.results) or "-"
                    out.write(f"#{result.frame_index} {top} ({result.latency_ms:.1f} ms)\n")
            except BrokenPipeError:  # the reader went away (`| head`): stop like Ctrl-C, quietly
                counter.done.set()
                counter.limit = counter.count
                _silence_stdout()
            if video is not None:
                video(result)

        options = {"loop": True} if loop and plugin_for(source) == "file" else {}
        pipeline, selection = build_pipeline(model_dir, manifest, source, config, [sink], source_options=options,
                                             fail_fast=True)
        err.print(f"backend {selection.backend} on {selection.device}: {selection.reason}", highlight=False)
        if selection.fallback:
            err.print(f"[yellow]{selection.fallback}[/yellow]", highlight=False)
        pipeline.start()
        try:
            _wait(pipeline, counter, duration, live=live, err=err)
        finally:
            pipeline.stop()
            if video is not None:
                video.close()
        stats = pipeline.stats()
        err.print(f"done: {counter.count} results; {_status_line(stats)}", highlight=False)
        if video is not None:
            err.print(f"saved {video.frames} annotated frames to {video.path}", highlight=False)


def _wait(pipeline, counter: _Counter, duration: float | None, *, live: bool, err) -> None:
    """Until the result count, the duration, the end of the source, or Ctrl-C."""
    deadline = time.monotonic() + duration if duration else None

    def finished() -> bool:
        return (counter.done.is_set() or pipeline.finished
                or (deadline is not None and time.monotonic() >= deadline))

    if not live:
        while not finished():
            counter.done.wait(0.05)
        return
    from rich.live import Live

    with Live(_table(pipeline.stats(), None), console=err, refresh_per_second=4, transient=False) as view:
        while not finished():
            counter.done.wait(0.25)
            view.update(_table(pipeline.stats(), counter.latest))
