"""Inference backends, one module per runtime (like Frigate's detector plug-ins), registered by key.

A runtime that is not installed is logged and skipped; ``BACKENDS.keys()`` lists those that loaded."""

from __future__ import annotations

from pathlib import Path

from edge_agent.engine.backends.base import BACKENDS, Backend, BackendOptions, DoneCallback, LoadedModel, Slot
from edge_agent.errors import BackendError
from edge_agent.engine.plugins import import_plugins
from models.manifest import Manifest

PLUGIN_MODULES = (
    "edge_agent.engine.backends.onnx",
    "edge_agent.engine.backends.openvino",
)
import_plugins(PLUGIN_MODULES)

from edge_agent.engine.backends.selection import Available, Selection, probe_available, select_backend  # noqa: E402


def load_model(model_dir: Path, manifest: Manifest, selection: Selection,
               options: BackendOptions | None = None) -> LoadedModel:
    """Load and warm up the selected backend; runtime failures become BackendError with the reason."""
    backend = BACKENDS.get(selection.backend)
    try:
        model = backend.load(model_dir, manifest, selection.device, options or BackendOptions())
    except BackendError:
        raise
    except Exception as exc:  # runtimes raise their own types (RuntimeError, OrtException, ...)
        raise BackendError(f"{selection.backend} could not load {manifest.name} on {selection.device}: {exc}") from exc
    try:
        model.warm_up()
    except Exception as exc:
        model.close()
        raise BackendError(f"{selection.backend} failed its warm-up run on {selection.device}: {exc}") from exc
    return model


__all__ = ["BACKENDS", "Available", "Backend", "BackendOptions", "DoneCallback", "LoadedModel", "Selection", "Slot",
           "load_model", "probe_available", "select_backend"]
