from __future__ import annotations

import numpy as np
import pytest

from training.crossval import cross_validate


def test_cross_validation_reports_each_fold_and_its_spread(tiny_cfg, small_digits, tiny_spec) -> None:  # noqa: ANN001
    cfg = tiny_cfg.model_copy(update={"epochs": 1})
    cv = cross_validate(cfg, small_digits, tiny_spec, k=3, seed=0, progress=True)
    accs = np.array(cv.fold_accuracies)
    assert len(accs) == 3 and ((0 <= accs) & (accs <= 1)).all()
    assert cv.mean == pytest.approx(accs.mean())
    assert cv.std == pytest.approx(accs.std(ddof=1))
    assert cv.spread == pytest.approx(accs.max() - accs.min())
    assert cv.to_dict()["k"] == 3 and len(cv.best_epochs) == 3


def test_cross_validation_is_reproducible_and_accepts_groups(tiny_cfg, small_digits, tiny_spec) -> None:  # noqa: ANN001
    cfg = tiny_cfg.model_copy(update={"epochs": 1})
    groups = np.arange(len(small_digits)) // 3
    a = cross_validate(cfg, small_digits, tiny_spec, k=2, seed=5, groups=groups, progress=False)
    b = cross_validate(cfg, small_digits, tiny_spec, k=2, seed=5, groups=groups, progress=False)
    assert a.fold_accuracies == b.fold_accuracies
