from __future__ import annotations

import numpy as np
import pytest

from training.data import Dataset
from training.errors import ConfigError
from training.split import kfold, split


def test_split_is_stratified_within_one_sample_per_class(digits: Dataset) -> None:
    s = split(digits, ratios=(0.7, 0.15, 0.15), seed=0)
    assert len(s.train) + len(s.val) + len(s.test) == len(digits)
    counts = np.bincount(digits.labels)
    for part, ratio in ((s.train, 0.7), (s.val, 0.15), (s.test, 0.15)):
        assert np.all(np.abs(np.bincount(part.labels, minlength=10) - counts * ratio) <= 1.0)
    assert set(s.train_idx) | set(s.val_idx) | set(s.test_idx) == set(range(len(digits)))
    assert s.to_dict() == {"seed": 0, "ratios": [0.7, 0.15, 0.15],
                           "sizes": {"train": len(s.train), "val": len(s.val), "test": len(s.test)}}


def test_same_seed_same_split_other_seed_other_split(digits: Dataset) -> None:
    a, b, c = split(digits, seed=7), split(digits, seed=7), split(digits, seed=8)
    assert np.array_equal(a.test_idx, b.test_idx)
    assert not np.array_equal(a.test_idx, c.test_idx)


def test_groups_never_cross_parts(digits: Dataset) -> None:
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 400, size=len(digits))  # random groups of ~4, mixed labels
    s = split(digits, seed=3, groups=groups)
    sets = [set(groups[s.train_idx]), set(groups[s.val_idx]), set(groups[s.test_idx])]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert 0.6 < len(s.train) / len(digits) < 0.8


def test_kfold_uses_every_sample_once_and_keeps_groups(small_digits: Dataset) -> None:
    groups = np.arange(len(small_digits)) // 2
    seen = []
    for train_idx, val_idx in kfold(small_digits, 5, seed=0, groups=groups):
        assert not set(groups[train_idx]) & set(groups[val_idx])
        assert not set(train_idx) & set(val_idx)
        assert len(set(small_digits.labels[val_idx])) == 10
        seen.extend(val_idx.tolist())
    assert sorted(seen) == list(range(len(small_digits)))


@pytest.mark.parametrize("ratios", [(0.7, 0.3), (0.5, -0.1, 0.6), (0, 0, 0)])
def test_bad_ratios_are_rejected(small_digits: Dataset, ratios: tuple) -> None:
    with pytest.raises(ConfigError):
        split(small_digits, ratios=ratios)


def test_bad_kfold_settings_are_rejected(small_digits: Dataset) -> None:
    with pytest.raises(ConfigError):
        list(kfold(small_digits, 1))
    with pytest.raises(ConfigError, match="groups"):
        split(small_digits, groups=[0, 1])
