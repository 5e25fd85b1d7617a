"""k-fold cross-validation: how much the score moves when the data is cut differently.

Each fold trains on k-1 folds and is scored on the held-out fold. Early stopping needs its own validation data, so a
stratified slice (``inner_val_ratio``) of the k-1 training folds is set aside for it: the held-out fold is never used
to pick the epoch, and its accuracy is an honest estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.manifest import InputSpec
from training.data import Dataset
from training.split import assign_groups, kfold
from training.train import TrainConfig, evaluate, fit


@dataclass
class CVResult:
    fold_accuracies: list[float]
    mean: float
    std: float
    spread: float
    k: int = 0
    seed: int = 0
    best_epochs: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "seed": self.seed, "fold_accuracies": self.fold_accuracies, "mean": self.mean,
                "std": self.std, "spread": self.spread, "best_epochs": self.best_epochs,
                "seconds": round(self.seconds, 2)}


def cross_validate(cfg: TrainConfig, dataset: Dataset, spec: InputSpec, k: int = 5, seed: int = 0,
                   groups: Any = None, *, inner_val_ratio: float = 0.15, progress: bool = True) -> CVResult:
    """Train ``k`` models and report per-fold accuracy, mean, standard deviation and spread (max - min)."""
    group_arr = None if groups is None else np.asarray(groups)
    accs: list[float] = []
    best_epochs: list[int] = []
    seconds = 0.0
    with _fold_progress(progress, k) as (bar, task):
        for fold, (train_idx, held_idx) in enumerate(kfold(dataset, k, seed, group_arr)):
            inner = assign_groups(dataset.labels[train_idx], (1 - inner_val_ratio, inner_val_ratio),
                                  seed=seed + fold, groups=None if group_arr is None else group_arr[train_idx])
            train = dataset.subset(train_idx[inner == 0])
            val = dataset.subset(train_idx[inner == 1])
            result = fit(cfg, train, val, spec, progress=False)
            _, acc = evaluate(result.model, dataset.subset(held_idx), spec)
            accs.append(float(acc))
            best_epochs.append(result.best_epoch)
            seconds += result.seconds
            if bar is not None:
                bar.update(task, advance=1, description=f"cross-validation fold {fold + 1}/{k}: acc {acc:.4f}")
    arr = np.asarray(accs)
    return CVResult(accs, float(arr.mean()), float(arr.std(ddof=1)) if k > 1 else 0.0,
                    float(arr.max() - arr.min()), k, seed, best_epochs, seconds)


class _fold_progress:  # noqa: N801 - a context manager used like a function
    def __init__(self, enabled: bool, k: int) -> None:
        self.enabled, self.k, self.bar = enabled, k, None

    def __enter__(self) -> tuple[Any, Any]:
        if not self.enabled:
            return None, None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.bar.__enter__()
        return self.bar, self.bar.add_task("cross-validation", total=self.k)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
