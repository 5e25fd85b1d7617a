"""Hyperparameter search with Optuna's TPE sampler.

Each trial trains a short run (epochs capped by ``epochs_cap``) on the training split and is scored on the validation
split (the test split is never seen). With ``storage`` set to an Optuna RDB URL (``sqlite:///study.db``,
``postgresql+psycopg://user@host/db``), several processes or machines share one study: each ``tune`` call loads the
study if it exists and adds its trials, and TPE learns from all of them.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from models.manifest import InputSpec
from training.data import Dataset
from training.errors import ConfigError
from training.train import TrainConfig, fit

BATCH_SIZES = (32, 64, 128)
OPTIMIZERS = ("adamw", "adam", "sgd")


@dataclass
class TuneResult:
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    study_name: str = ""
    storage: str | None = None
    metric: str = "val_acc"
    extra: dict[str, Any] = field(default_factory=dict)

    def best_config(self, base_cfg: TrainConfig) -> TrainConfig:
        """``base_cfg`` with the best trial's parameters applied (for the final retraining)."""
        return apply_params(base_cfg, self.best_params)

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write trials.json and trials.csv (one row a trial) into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = out_dir / "trials.json", out_dir / "trials.csv"
        json_path.write_text(json.dumps({"study_name": self.study_name, "metric": self.metric,
                                         "best_params": self.best_params, "best_value": self.best_value,
                                         "trials": self.trials}, indent=2, default=str) + "\n")
        param_keys = sorted({k for t in self.trials for k in t["params"]})
        with csv_path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["number", "state", "value", "duration_s", *param_keys])
            for t in self.trials:
                writer.writerow([t["number"], t["state"], t["value"], t["duration_s"],
                                 *[t["params"].get(k, "") for k in param_keys]])
        return {"json": json_path, "csv": csv_path}


def apply_params(base_cfg: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """Map search-space parameters onto a TrainConfig (``label_smoothing`` > 0 switches the loss)."""
    update = {k: v for k, v in params.items() if k in TrainConfig.model_fields}
    if "label_smoothing" in params:
        update["loss"] = "label_smoothing" if params["label_smoothing"] > 0 else "cross_entropy"
    return base_cfg.model_copy(update=update)


def suggest(trial: Any, epochs_cap: int) -> dict[str, Any]:
    """The search space: learning rate, weight decay, batch size, epochs (up to the cap), optimiser, smoothing."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
        "epochs": trial.suggest_int("epochs", max(1, epochs_cap // 3), epochs_cap),
        "optimizer": trial.suggest_categorical("optimizer", list(OPTIMIZERS)),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
    }


def tune(base_cfg: TrainConfig, train: Dataset, val: Dataset, spec: InputSpec, n_trials: int, *,
         storage: str | None = None, study_name: str = "edgefleet", seed: int = 0, epochs_cap: int = 10,
         metric: Literal["val_acc", "val_loss"] = "val_acc", progress: bool = True) -> TuneResult:
    """Run ``n_trials`` more trials of the study and return the best parameters over *all* of its trials.

    The sampler's seed is ``seed`` plus the number of trials the study already holds, so a second machine joining a
    shared study does not replay the first machine's random start-up trials.
    """
    import optuna

    if n_trials < 1:
        raise ConfigError("n_trials must be >= 1")
    if epochs_cap < 1:
        raise ConfigError("epochs_cap must be >= 1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if metric == "val_acc" else "minimize"
    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study {study_name!r} optimises in the other direction; use another study name")
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    base = base_cfg.model_copy(update={"patience": min(base_cfg.patience, max(2, epochs_cap // 2))})

    def objective(trial: Any) -> float:
        cfg = apply_params(base, suggest(trial, epochs_cap))
        result = fit(cfg, train, val, spec, progress=False)
        best = result.history[result.best_epoch - 1]
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("val_acc", best["val_acc"])
        trial.set_user_attr("val_loss", best["val_loss"])
        trial.set_user_attr("seconds", round(result.seconds, 2))
        return float(best[metric])

    callbacks = []
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        task = bar.add_task("tuning", total=n_trials)
        callbacks.append(lambda st, tr: bar.update(task, advance=1, description=(
            f"tuning: trial {tr.number} {metric} {tr.value if tr.value is None else round(tr.value, 4)}")))
        bar.start()
    try:
        study.optimize(objective, n_trials=n_trials, callbacks=callbacks, gc_after_trial=True)
    finally:
        if bar is not None:
            bar.stop()
    trials = [trial_record(t) for t in study.trials]
    return TuneResult(dict(study.best_params), float(study.best_value), trials, study_name, storage, metric)


def trial_record(t: Any) -> dict[str, Any]:
    duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
        else None
    return {"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
            "duration_s": None if duration is None else round(duration, 2), "user_attrs": dict(t.user_attrs)}
