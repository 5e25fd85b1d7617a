"""Stratified train/validation/test splits that keep duplicate groups on one side.

A group (for example an image and its near-duplicates, from ``CleaningReport.groups``) is assigned as a whole, so
no copy of a test image can sit in the training set. Assignment is greedy: groups in a seeded random order, largest
first, each to the part whose per-class quota is least filled, which gives exact stratification when every group is
a single image and close stratification otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.data import Dataset
from training.errors import ConfigError


@dataclass
class Split:
    train: Dataset
    val: Dataset
    test: Dataset
    seed: int
    ratios: tuple[float, ...]
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """Seed, ratios and sizes, for the manifest's ``training`` section."""
        return {"seed": self.seed, "ratios": list(self.ratios),
                "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)}}


def assign_groups(labels: np.ndarray, ratios: Sequence[float], *, seed: int = 0,
                  groups: Sequence[Any] | np.ndarray | None = None) -> np.ndarray:
    """Return, for each sample, the index of the part (0..len(ratios)-1) it goes to."""
    labels = np.asarray(labels, dtype=np.int64)
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or len(r) < 2 or (r < 0).any() or r.sum() <= 0:
        raise ConfigError(f"ratios must be >= 2 non-negative numbers with a positive sum, got {list(ratios)}")
    r = r / r.sum()
    n = len(labels)
    if groups is None:
        group_ids = np.arange(n)
    else:
        if len(groups) != n:
            raise ConfigError(f"groups has {len(groups)} entries for {n} samples")
        _, group_ids = np.unique(np.asarray(groups), return_inverse=True)
    num_classes = int(labels.max()) + 1 if n else 0
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_ids):
        members.setdefault(int(g), []).append(i)
    rng = np.random.default_rng(seed)
    keys = np.array(list(members))
    rng.shuffle(keys)
    keys = sorted(keys, key=lambda g: -len(members[int(g)]))  # stable: seeded order within equal sizes
    target = np.bincount(labels, minlength=num_classes)[:, None] * r[None, :]  # (classes, parts)
    filled = np.zeros_like(target)
    part_of = np.empty(n, dtype=np.int64)
    for g in keys:
        idx = members[int(g)]
        counts = np.bincount(labels[idx], minlength=num_classes).astype(np.float64)
        # how far each part is from its quota for the classes in this group, preferring parts with quota left
        deficit = ((target - filled) * counts[:, None]).sum(0) / counts.sum()
        deficit += rng.uniform(0, 1e-9, size=len(r))  # break exact ties at random, not always towards part 0
        deficit[r == 0] = -np.inf
        part = int(np.argmax(deficit))
        filled[:, part] += counts
        part_of[idx] = part
    return part_of


def split(dataset: Dataset, *, ratios: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0,
          groups: Sequence[Any] | np.ndarray | None = None) -> Split:
    """Split into train/val/test, stratified by label, each group kept on one side; the seed is recorded."""
    if len(ratios) != 3:
        raise ConfigError("split needs three ratios (train, val, test)")
    if len(dataset) < 3:
        raise ConfigError(f"cannot split {len(dataset)} samples three ways")
    part = assign_groups(dataset.labels, ratios, seed=seed, groups=groups)
    idx = [np.flatnonzero(part == p) for p in range(3)]
    for name, i, ratio in zip(("train", "val", "test"), idx, ratios):
        if ratio > 0 and len(i) == 0:
            raise ConfigError(f"the {name} part came out empty; use more data or a larger ratio")
    return Split(dataset.subset(idx[0]), dataset.subset(idx[1]), dataset.subset(idx[2]), seed, tuple(ratios),
                 idx[0], idx[1], idx[2])


def kfold(dataset: Dataset, k: int, seed: int = 0,
          groups: Sequence[Any] | np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``k`` (train_idx, val_idx) pairs: stratified folds, each group inside one fold."""
    if k < 2:
        raise ConfigError("k-fold needs k >= 2")
    if len(dataset) < k:
        raise ConfigError(f"cannot make {k} folds from {len(dataset)} samples")
    fold = assign_groups(dataset.labels, [1.0] * k, seed=seed, groups=groups)
    for f in range(k):
        yield np.flatnonzero(fold != f), np.flatnonzero(fold == f)
