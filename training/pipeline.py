"""The whole training workflow, step by step, as a careful ML engineer walks it:

load -> clean (report) -> split -> [tune] -> train -> assess (plots) -> [k-fold CV] -> export ONNX -> export OpenVINO
-> quantize (onnxruntime and NNCF) -> benchmark -> package (FP32 + INT8, signed) + model card + summary.json

Output: ``OUT/<name>-<version>/`` with the reports, plots, model files, the two ``.efpkg`` files and summary.json.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

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


class _Steps:
    """Prints each step as it starts and how long it took (to stderr, so ``--json`` stdout stays clean)."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, quiet=not enabled)
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def step(self, name: str, what: str) -> Iterator[None]:
        self.console.print(f"[bold cyan]> {what}[/]")
        t = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - t, 2)
        self.console.print(f"  [green]done[/] {name} in {self.seconds[name]:.1f} s")

    def note(self, text: str) -> None:
        self.console.print(f"  {text}")

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self._start, 2)


def _decoding(model: Any, x: np.ndarray) -> str:
    """``softmax`` when the model already outputs probabilities (rows non-negative, summing to 1), else ``logits``."""
    import torch

    with torch.no_grad():
        y = model(torch.from_numpy(x[:8])).numpy()
    return "softmax" if (y >= 0).all() and np.allclose(y.sum(axis=1), 1.0, atol=1e-4) else "logits"


def _train_config(opts: TrainingOptions) -> Any:
    from training.train import TrainConfig

    kw: dict[str, Any] = {"arch": opts.arch, "arch_params": dict(opts.arch_params), "seed": opts.seed}
    for key, field_name in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"),
                            ("train_threads", "num_threads")):
        if getattr(opts, key) is not None:
            kw[field_name] = getattr(opts, key)
    return TrainConfig(**kw)


def run_training(opts: TrainingOptions) -> TrainingOutcome:
    """Walk the whole workflow and write everything under ``opts.out/<name>-<version>/``."""
    from models.signing import load_or_create_private_key
    from training import assess as assess_mod
    from training.architectures import default_image_size
    from training.benchmark import bench_variants
    from training.cleaning import clean
    from training.data import load_dataset
    from training.export import export_onnx, export_openvino, run_onnx
    from training.model_card import write_model_card
    from training.package import ModelFiles, PackageInputs, host_info, write_packages
    from training.preprocess import input_spec_for, to_tensor
    from training.quantize import measure, quantize_onnx, quantize_openvino, to_proba
    from training.split import split as split_data
    from training.train import fit

    check_options(opts)
    steps = _Steps(opts.progress)
    name = opts.name or default_name(opts.data)
    run_dir = Path(opts.out) / f"{name}-{opts.version}"
    model_dir, plots_dir = run_dir / "model", run_dir / "plots"

    with steps.step("load", f"Loading {opts.data}"):
        dataset, load_report = load_dataset(opts.data, image_size=opts.image_size, seed=opts.seed)
        steps.note(f"{len(dataset)} images, {dataset.num_classes} classes, {dataset.image_shape} x {dataset.channels}")
    # only once the data loaded: a typo in --data must not leave folders or keys behind
    private_key = load_or_create_private_key(Path(opts.signing_key))
    for d in (model_dir, plots_dir):
        d.mkdir(parents=True, exist_ok=True)
    with steps.step("clean", "Cleaning (report: cleaning_report.md)"):
        cleaned, cleaning = clean(dataset, load_report, drop_mislabeled=opts.drop_mislabeled, seed=opts.seed)
        cleaning.write(run_dir)
        cleaning_summary = cleaning.counts()
        steps.note(f"{len(cleaned)} images kept of {len(dataset)}")
    groups = cleaning.groups
    with steps.step("split", f"Splitting {opts.ratios} with seed {opts.seed}"):
        parts = split_data(cleaned, ratios=opts.ratios, seed=opts.seed, groups=groups)
        steps.note(f"train {len(parts.train)}, val {len(parts.val)}, test {len(parts.test)}")
    size = opts.image_size or default_image_size(opts.arch, cleaned)
    spec = input_spec_for(parts.train, size)
    cfg = _train_config(opts)
    tuning: dict[str, Any] | None = None
    if opts.tune:
        from training.tune import tune

        with steps.step("tune", f"Tuning: {opts.tune} Optuna trials (log: tuning/trials.csv)"):
            res = tune(cfg, parts.train, parts.val, spec, opts.tune, storage=opts.study_storage,
                       study_name=opts.study_name or f"{name}-{opts.version}", seed=opts.seed,
                       epochs_cap=opts.epochs or 10, progress=opts.progress)
            res.write(run_dir / "tuning")
            cfg = res.best_config(cfg)
            tuning = {"trials_run": opts.tune, "trials_in_study": len(res.trials), "study_name": res.study_name,
                      "best_params": dict(res.best_params), "best_value": res.best_value, "metric": res.metric}
            steps.note(f"best {res.metric} {res.best_value:.4f} with {res.best_params}")
    with steps.step("train", f"Training {cfg.arch} ({cfg.epochs} epochs max)"):
        trained = fit(cfg, parts.train, parts.val, spec, progress=opts.progress)
    with steps.step("assess", "Assessing on the held-out test set"):
        assessment = assess_mod.assess(trained.model, parts.test, spec, plots_dir, trained.history)
        metrics = dict(assessment.metrics)
        steps.note(f"test accuracy {100 * metrics['accuracy']:.2f}%")
    cv: dict[str, Any] | None = None
    if opts.cv:
        from training.crossval import cross_validate

        with steps.step("cv", f"{opts.cv}-fold cross-validation"):
            res_cv = cross_validate(cfg, cleaned, spec, opts.cv, seed=opts.seed, groups=groups,
                                    progress=opts.progress)
            cv = {"k": opts.cv, "mean_accuracy": res_cv.mean, "std": res_cv.std, "spread": res_cv.spread,
                  "fold_accuracies": list(res_cv.fold_accuracies)}
            steps.note(f"mean {100 * res_cv.mean:.2f}%, spread {100 * res_cv.spread:.2f} points")

    rng = np.random.default_rng(opts.seed)
    calib_idx = rng.permutation(len(parts.train))[: opts.calibration_size]
    calib = to_tensor(parts.train.images[np.sort(calib_idx)], spec)
    test_x, test_y = to_tensor(parts.test.images, spec), parts.test.labels
    decoding = _decoding(trained.model, test_x)
    with steps.step("export_onnx", "Exporting ONNX (checked against torch)"):
        onnx_path = export_onnx(trained.model, spec, model_dir / f"{name}.onnx", sample=test_x)
    with steps.step("export_openvino", "Exporting OpenVINO IR (checked against onnxruntime)"):
        xml, binf = export_openvino(onnx_path, model_dir, sample=test_x)
    with steps.step("quantize", "INT8: onnxruntime static QDQ u8s8 and OpenVINO NNCF"):
        fp32_metrics = measure(to_proba(run_onnx(onnx_path, test_x), decoding), test_y, cleaned.class_names)
        q_ort = quantize_onnx(onnx_path, model_dir / f"{name}-int8.onnx", calib, test_x, test_y,
                              cleaned.class_names, decoding=decoding, threshold=opts.int8_threshold,
                              calibration_size=opts.calibration_size, fp32_metrics=fp32_metrics)
        q_ov = quantize_openvino(xml, model_dir, calib, test_x, test_y, cleaned.class_names, decoding=decoding,
                                 threshold=opts.int8_threshold, subset_size=opts.calibration_size)
        for q in (q_ort, q_ov):
            steps.note(f"{q.runtime}: {q.fp32_accuracy:.2f}% -> {q.int8_accuracy:.2f}% ({q.delta:+.2f} points)")
    with steps.step("benchmark", "Benchmarking batch-1 latency, configurations interleaved"):
        lat = bench_variants(onnx_path, xml, q_ort.model_path, q_ov.model_path, spec, runs=opts.bench_runs,
                             threads=opts.threads)
        host = host_info(opts.threads)
        bench: dict[str, dict[str, Any]] = {p: {"host": host, **lat[p]} for p in ("fp32", "int8")}
    training_info = {
        "arch": cfg.arch, "hyperparameters": cfg.model_dump(), "seed": opts.seed, "split_ratios": list(opts.ratios),
        "split_sizes": {"train": len(parts.train), "val": len(parts.val), "test": len(parts.test)},
        "best_epoch": trained.best_epoch, "epochs_run": len(trained.history), "train_seconds": round(trained.seconds, 2),
        "cleaning": cleaning_summary, "cross_validation": cv, "tuning": tuning, "data_source": opts.data,
    }
    with steps.step("package", "Packaging, signing, writing the model card"):
        inputs = PackageInputs(
            name=name, version=opts.version, spec=spec, labels=list(cleaned.class_names), decoding=decoding,
            metrics=metrics, fp32=ModelFiles(onnx_path, xml, binf),
            int8=ModelFiles(q_ort.model_path, q_ov.model_path, q_ov.model_path.with_suffix(".bin")),
            quantization=[q_ort, q_ov], benchmark_fp32=bench["fp32"], benchmark_int8=bench["int8"],
            data_fingerprint=parts.train.fingerprint(), training=training_info,
        )
        fp32_pkg, int8_pkg, fp32_man, int8_man = write_packages(inputs, run_dir, private_key)
        data_info = {"source": opts.data, "images loaded": len(dataset), "images after cleaning": len(cleaned),
                     "classes": cleaned.num_classes, "image size": f"{dataset.image_shape[0]}x{dataset.image_shape[1]}",
                     "model input": f"{spec.height}x{spec.width}x{spec.channels}",
                     "train / val / test": f"{len(parts.train)} / {len(parts.val)} / {len(parts.test)}",
                     "split seed": opts.seed}
        card = write_model_card(run_dir / "model_card.md", fp32_man, int8_man, [q_ort, q_ov], data=data_info,
                                cleaning=cleaning_summary, cross_validation=cv, plots=dict(assessment.plots))
        registered: list[str] = []
        if opts.registry is not None:
            from models.registry import LocalRegistry

            reg = LocalRegistry(Path(opts.registry))
            for pkg in (fp32_pkg, int8_pkg):
                registered.append(str(reg.add(pkg, private_key.public_key()).path))
    summary = {
        "name": name, "version": opts.version, "run_dir": str(run_dir),
        "packages": {"fp32": str(fp32_pkg), "int8": str(int8_pkg)},
        "deployable": {"fp32": fp32_man.deployable, "int8": int8_man.deployable}, "flags": int8_man.flags,
        "model_card": str(card), "cleaning_report": str(run_dir / "cleaning_report.md"),
        "test_accuracy": metrics.get("accuracy"), "metrics": fp32_man.metrics, "cross_validation": cv,
        "quantization": {q.runtime: {k: v for k, v in q.to_dict().items()} for q in (q_ort, q_ov)},
        "benchmark": bench, "tuning": tuning, "registry": registered,
        "training": {k: training_info[k] for k in ("arch", "best_epoch", "epochs_run", "train_seconds")},
        "data": data_info, "steps_seconds": steps.seconds, "total_seconds": steps.total,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    steps.console.print(f"[bold green]Done in {steps.total:.0f} s[/]: {fp32_pkg.name}, {int8_pkg.name} in {run_dir}")
    return TrainingOutcome(run_dir, fp32_pkg, int8_pkg, summary, steps.seconds)


def check_options(opts: TrainingOptions) -> None:
    """Refuse inconsistent options before any work starts."""
    if abs(sum(opts.ratios) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must sum to 1, got {opts.ratios}")
    if opts.cv == 1:
        raise ConfigError("--cv needs k >= 2 (or 0 to skip)")
    from training.architectures import ARCHITECTURES

    if opts.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {opts.arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
