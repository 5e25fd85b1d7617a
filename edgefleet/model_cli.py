"""`edgefleet model ...`: the package commands of `models/` plus the two that need the training stack and the
two that talk to the fleet server's registry.

`models` may not import training (a device verifies packages without torch) or the server, so the parts meet
here, in a group of this module's own: `models.cli.model_app` is composed in, not changed; `quantize` and `bench`
are loaded from training only when they run, `publish` and `ls` from fleet_server.registry_cli (which needs only
httpx: the agent extra has it). `ls` without `--server` lists the local registry, as `list` does."""

from __future__ import annotations

import typer

from edgefleet.lazy_commands import LazyCommand, LazyTyperGroup
from models import cli as models_cli

_QUANTIZE = "Quantize an ONNX model to INT8 (onnxruntime QDQ and OpenVINO NNCF)."
_BENCH = "Measure a package's latency with each runtime on this machine."
# Their help here is the one line, not training's longer docstrings: `edgefleet model X --help` reads the same as
# the group's list.
TRAINING_COMMANDS = (
    LazyCommand("quantize", "training.cli:quantize_command", "training", _QUANTIZE, help=_QUANTIZE),
    LazyCommand("bench", "training.cli:bench_command", "training", _BENCH, help=_BENCH),
)
_PUBLISH = "Upload a signed package to the fleet server's model registry."
_LS = "List model packages: the local registry's, or with --server the fleet server's."
REGISTRY_COMMANDS = (
    LazyCommand("publish", "fleet_server.registry_cli:publish_command", "agent", _PUBLISH),
    LazyCommand("ls", "fleet_server.registry_cli:ls_command", "agent", _LS),
)


class _ModelGroup(LazyTyperGroup):
    lazy_commands = TRAINING_COMMANDS + REGISTRY_COMMANDS


model_app = typer.Typer(cls=_ModelGroup, no_args_is_help=True, add_completion=False,
                        help=models_cli.model_app.info.help)
model_app.add_typer(models_cli.model_app)  # no name: its commands join this group's, its app stays as it is
