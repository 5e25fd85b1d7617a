"""The learning half of a training run: load -> clean -> split -> [tune] -> train -> assess -> [k-fold CV].

Each step announces itself on the run's progress log, does one job and returns what later steps read, so
``training.pipeline.run_training`` is the list of steps and every hand-over between them is a named value. Torch and
the other heavy libraries are imported inside the step that needs them: a rejected option fails fast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.progress import StepLog

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from models.manifest import InputSpec
    from training.assess import Assessment
    from training.data import Dataset, LoadReport
    from training.pipeline import TrainingOptions
    from training.split import Split
    from training.train import TrainConfig, TrainResult


@dataclass
class Run:
    """What every step reads: the options, the package name, the output folder and the progress log."""

    opts: TrainingOptions
    name: str
    run_dir: Path
    log: StepLog

    @classmethod
    def start(cls, opts: TrainingOptions, name: str) -> Run:
        return cls(opts, name, Path(opts.out) / f"{name}-{opts.version}", StepLog(opts.progress))

    @property
    def model_dir(self) -> Path:
        return self.run_dir / "model"

    @property
    def plots_dir(self) -> Path:
        return self.run_dir / "plots"


@dataclass
class Data:
    """The data as loaded and as cleaned; ``groups`` (one per cleaned image) keeps near copies on one side of every
    split, and ``cleaning`` holds the cleaning report's counts for the manifests and the model card."""

    loaded: Dataset
    cleaned: Dataset
    groups: np.ndarray
    cleaning: dict[str, int]


@dataclass
class Findings:
    """What the run learned about its data and its model: the manifests, the model card and the summary say it."""

    data: Data
    parts: Split
    spec: InputSpec
    metrics: dict[str, Any]
    plots: dict[str, Path]
    cv: dict[str, Any] | None
    tuning: dict[str, Any] | None
    training: dict[str, Any]


def load_data(run: Run) -> tuple[Dataset, LoadReport]:
    from training.data import load_dataset

    opts = run.opts
    with run.log.step("load", f"Loading {opts.data}"):
        dataset, load_report = load_dataset(opts.data, image_size=opts.image_size, seed=opts.seed)
        run.log.note(f"{len(dataset)} images, {dataset.num_classes} classes, {dataset.image_shape} x "
                     f"{dataset.channels}")
    return dataset, load_report


def prepare_outputs(run: Run) -> Ed25519PrivateKey:
    """The signing key and the output folders. Called only once the data loaded: a typo in --data must not leave
    folders or keys behind. The key is loaded here, long before it signs, so a broken key fails the run before
    any training; it is safe to hold that long because the key file is created exclusively and never replaced."""
    from models.signing import load_or_create_private_key

    private_key = load_or_create_private_key(Path(run.opts.signing_key))
    for d in (run.model_dir, run.plots_dir):
        d.mkdir(parents=True, exist_ok=True)
    return private_key


def clean_data(run: Run, loaded: Dataset, load_report: LoadReport) -> Data:
    from training.cleaning import clean

    opts = run.opts
    with run.log.step("clean", "Cleaning (report: cleaning_report.md)"):
        cleaned, report = clean(loaded, load_report, drop_mislabeled=opts.drop_mislabeled, seed=opts.seed)
        report.write(run.run_dir)
        counts = report.counts()
        run.log.note(f"{len(cleaned)} images kept of {len(loaded)}")
    return Data(loaded, cleaned, report.groups, counts)


def split_data(run: Run, data: Data) -> Split:
    from training.split import split

    opts = run.opts
    with run.log.step("split", f"Splitting {opts.ratios} with seed {opts.seed}"):
        parts = split(data.cleaned, ratios=opts.ratios, seed=opts.seed, groups=data.groups)
        run.log.note(f"train {len(parts.train)}, val {len(parts.val)}, test {len(parts.test)}")
    return parts


def input_spec(run: Run, data: Data, parts: Split) -> InputSpec:
    """The model input: ``--image-size`` or the architecture's default for this data, normalised on *train*."""
    from training.architectures import default_image_size
    from training.preprocess import input_spec_for

    return input_spec_for(parts.train, run.opts.image_size or default_image_size(run.opts.arch, data.cleaned))


def train_config(opts: TrainingOptions) -> TrainConfig:
    """The TrainConfig the options ask for; options left at None keep TrainConfig's defaults."""
    from training.train import TrainConfig

    kw: dict[str, Any] = {"arch": opts.arch, "arch_params": dict(opts.arch_params), "seed": opts.seed}
    for key, field_name in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"),
                            ("train_threads", "num_threads")):
        if getattr(opts, key) is not None:
            kw[field_name] = getattr(opts, key)
    return TrainConfig(**kw)


def tune(run: Run, cfg: TrainConfig, parts: Split, spec: InputSpec) -> tuple[TrainConfig, dict[str, Any] | None]:
    """With ``--tune N``: N Optuna trials, and ``cfg`` with the best trial's parameters; else ``cfg`` unchanged."""
    opts = run.opts
    if not opts.tune:
        return cfg, None
    from training.tune import tune as run_study

    with run.log.step("tune", f"Tuning: {opts.tune} Optuna trials (log: tuning/trials.csv)"):
        res = run_study(cfg, parts.train, parts.val, spec, opts.tune, storage=opts.study_storage,
                        study_name=opts.study_name or f"{run.name}-{opts.version}", seed=opts.seed,
                        epochs_cap=opts.epochs or 10, progress=opts.progress)
        res.write(run.run_dir / "tuning")
        cfg = res.best_config(cfg)
        tuning = {"trials_run": opts.tune, "trials_in_study": len(res.trials), "study_name": res.study_name,
                  "best_params": dict(res.best_params), "best_value": res.best_value, "metric": res.metric}
        run.log.note(f"best {res.metric} {res.best_value:.4f} with {res.best_params}")
    return cfg, tuning


def train(run: Run, cfg: TrainConfig, parts: Split, spec: InputSpec) -> TrainResult:
    from training.train import fit

    with run.log.step("train", f"Training {cfg.arch} ({cfg.epochs} epochs max)"):
        return fit(cfg, parts.train, parts.val, spec, progress=run.opts.progress)


def assess(run: Run, trained: TrainResult, parts: Split, spec: InputSpec) -> Assessment:
    """Test-set metrics and the plots (confusion matrix, ROC curves, training curves)."""
    from training.assess import assess as assess_model

    with run.log.step("assess", "Assessing on the held-out test set"):
        assessment = assess_model(trained.model, parts.test, spec, run.plots_dir, trained.history)
        run.log.note(f"test accuracy {100 * assessment.metrics['accuracy']:.2f}%")
    return assessment


def cross_validate(run: Run, cfg: TrainConfig, data: Data, spec: InputSpec) -> dict[str, Any] | None:
    """With ``--cv K``: how much the accuracy moves with the split (K folds over the cleaned data); else None."""
    opts = run.opts
    if not opts.cv:
        return None
    from training.crossval import cross_validate as run_folds

    with run.log.step("cv", f"{opts.cv}-fold cross-validation"):
        res = run_folds(cfg, data.cleaned, spec, opts.cv, seed=opts.seed, groups=data.groups, progress=opts.progress)
        cv = {"k": opts.cv, "mean_accuracy": res.mean, "std": res.std, "spread": res.spread,
              "fold_accuracies": list(res.fold_accuracies)}
        run.log.note(f"mean {100 * res.mean:.2f}%, spread {100 * res.spread:.2f} points")
    return cv


def findings(run: Run, data: Data, parts: Split, spec: InputSpec, cfg: TrainConfig, trained: TrainResult,
             assessment: Assessment, cv: dict[str, Any] | None, tuning: dict[str, Any] | None) -> Findings:
    """Everything learned so far, with the ``training`` record the manifests carry."""
    opts = run.opts
    training_info = {
        "arch": cfg.arch, "hyperparameters": cfg.model_dump(), "seed": opts.seed, "split_ratios": list(opts.ratios),
        "split_sizes": {"train": len(parts.train), "val": len(parts.val), "test": len(parts.test)},
        "best_epoch": trained.best_epoch, "epochs_run": len(trained.history), "train_seconds": round(trained.seconds, 2),
        "cleaning": data.cleaning, "cross_validation": cv, "tuning": tuning, "data_source": opts.data,
    }
    return Findings(data, parts, spec, dict(assessment.metrics), dict(assessment.plots), cv, tuning, training_info)
