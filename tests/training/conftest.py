"""Small, real data for the training tests: scikit-learn's bundled digits, exported to PNG folders where needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data import Dataset, export_folder, load_dataset


@pytest.fixture(scope="session")
def digits() -> Dataset:
    ds, _ = load_dataset("digits")
    return ds


@pytest.fixture(scope="session")
def small_digits(digits: Dataset) -> Dataset:
    """30 images of each digit (300), a fixed, stratified pick."""
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(digits.labels == c), 30, replace=False) for c in range(10)])
    return digits.subset(np.sort(idx))


@pytest.fixture()
def digits_folder(tmp_path: Path, digits: Dataset) -> tuple[Path, list[Path]]:
    """All 1,797 digits as PNGs in tmp_path/digits/<label>/nnnnn.png."""
    root = tmp_path / "digits"
    return root, export_folder(digits, root)
