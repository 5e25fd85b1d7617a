"""The whole training workflow, step by step, as a careful ML engineer walks it:

load -> clean (report) -> split -> [tune] -> train -> assess (plots) -> [k-fold CV] -> export ONNX -> export OpenVINO
-> quantize (onnxruntime and NNCF) -> benchmark -> package (FP32 + INT8, signed) + model card + summary.json

The steps live in ``training.stages`` (the learning half) and ``training.shipping`` (export to summary);
``run_training`` only lists them, so each hand-over between steps is a named value.

Output: ``OUT/<name>-<version>/`` with the reports, plots, model files, the two ``.efpkg`` files and summary.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from training import shipping, stages
from training.errors import ConfigError


class TrainingOptions(BaseModel):
    """Everything ``edgefleet train`` takes; built once by the CLI (or a test) and passed in."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="digits, synthetic[:N], a folder of class sub-folders, or a CSV of path,label")
    out: Path = Field(description="output root; the run writes OUT/<name>-<version>/")
    signing_key: Path = Field(description="Ed25519 private key (PEM) that signs the packages; created if missing")
    arch: str = "tiny_cnn"
    arch_params: dict[str, Any] = Field(default_factory=dict)
    epochs: int | None = Field(None, ge=1, description="None: the TrainConfig default")
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    cv: int = Field(0, ge=0, description="k for k-fold cross-validation; 0 skips it")
    tune: int = Field(0, ge=0, description="Optuna trials; 0 skips tuning")
    study_storage: str | None = None
    study_name: str | None = None
    seed: int = 0
    image_size: int | None = Field(None, ge=4)
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = Field("1.0.0", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    int8_threshold: float = Field(1.0, ge=0)
    calibration_size: int = Field(300, ge=1)
    drop_mislabeled: bool = False
    registry: Path | None = None
    bench_runs: int = Field(100, ge=5, description="timed batch-1 runs per runtime configuration")
    threads: int = Field(2, ge=1, description="inference threads for the latency benchmark")
    train_threads: int | None = Field(None, ge=1, description="torch threads for training; None: the TrainConfig "
                                                               "default (chosen from the input size)")
    progress: bool = True


@dataclass
class TrainingOutcome:
    run_dir: Path
    fp32_package: Path
    int8_package: Path
    summary: dict[str, Any]
    step_seconds: dict[str, float] = field(default_factory=dict)


def default_name(data: str) -> str:
    """A package name from the data source: ``digits``, ``synthetic``, or the folder / CSV name."""
    if data == "digits" or data.startswith("synthetic"):
        return data.split(":")[0]
    stem = Path(data).stem if Path(data).suffix.lower() == ".csv" else Path(data).name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._") or "model"
    return name if name[0].isalnum() else f"m{name}"


def run_training(opts: TrainingOptions) -> TrainingOutcome:
    """Walk the whole workflow and write everything under ``opts.out/<name>-<version>/``."""
    check_options(opts)
    run = stages.Run.start(opts, opts.name or default_name(opts.data))
    loaded, load_report = stages.load_data(run)
    private_key = stages.prepare_outputs(run)
    data = stages.clean_data(run, loaded, load_report)
    parts = stages.split_data(run, data)
    spec = stages.input_spec(run, data, parts)
    cfg, tuning = stages.tune(run, stages.train_config(opts), parts, spec)
    trained = stages.train(run, cfg, parts, spec)
    assessment = stages.assess(run, trained, parts, spec)
    cv = stages.cross_validate(run, cfg, data, spec)
    found = stages.findings(run, data, parts, spec, cfg, trained, assessment, cv, tuning)
    held = shipping.held_out(run, parts, spec, trained.model)
    fp32 = shipping.export(run, trained.model, spec, held)
    quantized = shipping.quantize(run, fp32, held, data.cleaned.class_names)
    bench = shipping.benchmark(run, fp32, quantized, spec)
    packaged = shipping.package(run, private_key, found, held, fp32, quantized, bench)
    summary = shipping.write_summary(run, found, quantized, bench, packaged)
    return TrainingOutcome(run.run_dir, packaged.fp32, packaged.int8, summary, run.log.seconds)


def check_options(opts: TrainingOptions) -> None:
    """Refuse inconsistent options before any work starts."""
    if abs(sum(opts.ratios) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must sum to 1, got {opts.ratios}")
    if opts.cv == 1:
        raise ConfigError("--cv needs k >= 2 (or 0 to skip)")
    from training.architectures import ARCHITECTURES

    if opts.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {opts.arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
