"""Builds a ready-to-start pipeline from an unpacked model package, a camera spec and a pipeline config.

Used by ``edgefleet agent infer`` and by the fleet agent (edge_agent.fleet.agent) alike, so both choose backends,
fall back and preprocess the same way."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgefleet.protocol import PipelineConfig
from edge_agent.engine.backends import BackendOptions, LoadedModel, load_model, select_backend
from edge_agent.errors import BackendError, ConfigError
from edge_agent.engine.interface import Selection, Sink
from edge_agent.engine.pipeline import Pipeline
from edge_agent.engine.postprocess import build_postprocessor
from edge_agent.engine.preprocess import Preprocessor
from models.manifest import Manifest

log = logging.getLogger(__name__)


def load_selected(model_dir: Path, manifest: Manifest, config: PipelineConfig,
                  options: BackendOptions | None = None) -> tuple[LoadedModel, Selection]:
    """Select and load. An accelerator that is listed but fails to load falls back to CPU with the reason."""
    selection = select_backend(manifest, config.backend, config.device)
    if selection.fallback:
        log.info("%s", selection.fallback)  # callers show or report it (agent infer prints it, the agent's twin)
    try:
        return load_model(model_dir, manifest, selection, options), selection
    except BackendError as exc:
        if selection.device == "CPU":
            raise
        cpu = select_backend(manifest, config.backend, "CPU")
        text = f"{selection.backend} on {selection.device} failed to load ({exc}) -> using {cpu.backend} on CPU"
        log.warning("%s", text)
        cpu = replace(cpu, fallback="; ".join(t for t in (selection.fallback, text) if t))
        return load_model(model_dir, manifest, cpu, options), cpu


def build_pipeline(model_dir: Path, manifest: Manifest, source_spec: str, config: PipelineConfig,
                   sinks: Sequence[Sink], *, source_options: dict[str, Any] | None = None,
                   backend_options: BackendOptions | None = None, fail_fast: bool = False,
                   drop_frames: bool | None = None, opencv_threads: int | None = 1,
                   on_camera_event: Callable[[Any], None] | None = None,
                   camera_options: dict[str, Any] | None = None) -> tuple[Pipeline, Selection]:
    """Camera + backend + pre/post-processing + sinks, not started yet.

    ``fail_fast`` opens the source now so a wrong path or URL is an immediate SourceError (the CLI); without it
    the capture thread opens it and keeps retrying (the fleet agent, where a camera may come back).
    ``opencv_threads`` sets OpenCV's own thread pool for the process (None leaves it): the pipeline already runs
    its stages on threads of its own, and OpenCV splitting a 224x224 blob over a pool costs more than it saves
    (its pool's hand-off outweighs the work at that size, while the inference streams want those cores).
    A local camera (`/dev/videoN`, `usb:N`, `serial:S`) in the fleet agent (no ``fail_fast``) runs under a
    :class:`~edge_agent.engine.discovery.CameraManager`: when udev says it was unplugged the pipeline waits and
    ``on_camera_event`` hears about it, and when the same serial comes back it resumes without a restart."""
    from edge_agent.engine.capture import CaptureThread
    from edge_agent.engine.sources import open_source, plugin_for

    if model_dir is None or manifest is None:
        raise ConfigError("no model to run: install a model package first")
    if opencv_threads is not None:
        import cv2

        cv2.setNumThreads(opencv_threads)
    postprocessor = build_postprocessor(manifest, top_k=config.top_k)
    source = open_source(source_spec, **(source_options or {}))
    props = source.open() if fail_fast else None
    if backend_options is None:
        # A second feeder thread pays off only when preprocessing is real work (a resize); for frames already at
        # the input size one feeder over all requests keeps the streams busier (more fps in bench/agent_bench.py).
        at_size = props is not None and (props.width, props.height) == (manifest.input.width, manifest.input.height)
        backend_options = BackendOptions(lanes=1 if at_size else None, embed_preprocessing=True)
    try:
        model, selection = load_selected(model_dir, manifest, config, backend_options)
    except BaseException:
        source.close()
        raise
    live = props.is_live if props is not None else getattr(source, "realtime", True)
    # the backend may have taken over all but the resize; a live camera's resize may use a second core
    preprocessor = Preprocessor(model.input_spec, split_shrinks=live)
    if not fail_fast and plugin_for(source_spec) == "v4l2":
        from edge_agent.engine.discovery import CameraManager

        source.close()  # the manager opens the camera by its udev identity, now and after every re-plug
        capture = CameraManager(source_spec, on_event=on_camera_event, drop_frames=drop_frames,
                                **(camera_options or {}))
    else:
        capture = CaptureThread(source, drop_frames=drop_frames)
    return Pipeline(capture, model, preprocessor, postprocessor, sinks, max_fps=config.max_fps), selection
