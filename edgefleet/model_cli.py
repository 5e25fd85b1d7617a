"""`edgefleet model ...`: the package commands of `models/` plus the ones that need the training stack.

`models` may not import training (a device verifies packages without torch), so the two halves meet here:
`quantize` and `bench` load training only when they run."""

from __future__ import annotations

import importlib

import typer

from models.cli import model_app


def _training(attr: str):
    try:
        return getattr(importlib.import_module("training.cli"), attr)
    except ImportError as exc:
        if (exc.name or "").startswith("training"):
            raise
        typer.echo(f"this command needs the training extra ({exc.name}): pip install 'edgefleet[training]'", err=True)
        raise typer.Exit(3) from None


def _mount(name: str, attr: str, help_: str) -> None:
    try:
        func = getattr(importlib.import_module("training.cli"), attr)
    except ImportError:
        @model_app.command(name, help=help_, context_settings={"allow_extra_args": True,
                                                               "ignore_unknown_options": True})
        def _missing(ctx: typer.Context) -> None:
            _training(attr)
        return
    model_app.command(name, help=help_)(func)


_mount("quantize", "quantize_command", "Quantize an ONNX model to INT8 (onnxruntime QDQ and OpenVINO NNCF).")
_mount("bench", "bench_command", "Measure a package's latency with each runtime on this machine.")
