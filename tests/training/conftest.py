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


@pytest.fixture(scope="session")
def tiny_split(small_digits: Dataset):  # noqa: ANN201 - training.split.Split
    from training.split import split

    return split(small_digits, ratios=(0.6, 0.2, 0.2), seed=0)


@pytest.fixture(scope="session")
def tiny_spec(tiny_split):  # noqa: ANN001, ANN201 - models.manifest.InputSpec
    from training.preprocess import input_spec_for

    return input_spec_for(tiny_split.train)


@pytest.fixture()
def tiny_cfg():  # noqa: ANN201 - training.train.TrainConfig
    """A 2-epoch, narrow tiny_cnn: enough to exercise every code path in well under a second."""
    from training.train import TrainConfig

    return TrainConfig(arch="tiny_cnn", arch_params={"width": 8}, epochs=2, batch_size=32, lr=3e-3, seed=0,
                       num_threads=1)
