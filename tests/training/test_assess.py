from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from training.assess import assess, metrics_from_proba, predict_proba
from training.errors import DataError
from training.train import fit

PROBA = np.array([
    [0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7],
    [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1], [0.4, 0.1, 0.5],
])
LABELS = np.array([0, 1, 2, 1, 2, 0, 2, 2, 1, 0])
NAMES = ["cat", "dog", "bird"]


def test_metrics_match_scikit_learn_on_hand_made_probabilities() -> None:
    m = metrics_from_proba(PROBA, LABELS, NAMES)
    pred = PROBA.argmax(1)
    p, r, f, s = precision_recall_fscore_support(LABELS, pred, zero_division=0)
    assert m["accuracy"] == pytest.approx(accuracy_score(LABELS, pred)) == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(p.mean())
    assert m["recall"] == pytest.approx(r.mean())
    assert m["f1"] == pytest.approx(f.mean())
    assert m["auc"] == pytest.approx(roc_auc_score(LABELS, PROBA, multi_class="ovr", average="macro"))
    assert m["confusion_matrix"] == confusion_matrix(LABELS, pred).tolist()
    assert m["per_class"]["dog"] == pytest.approx({"precision": p[1], "recall": r[1], "f1": f[1], "support": 3,
                                                   "auc": roc_auc_score(LABELS == 1, PROBA[:, 1])})
    assert m["n"] == 10


def test_a_class_absent_from_the_test_labels_does_not_count_as_zero() -> None:
    keep = LABELS != 1
    proba = PROBA[keep]
    m = metrics_from_proba(proba, LABELS[keep], NAMES)
    assert m["per_class"]["dog"]["support"] == 0 and m["per_class"]["dog"]["auc"] is None
    pred = proba.argmax(1)
    _, r, _, _ = precision_recall_fscore_support(LABELS[keep], pred, labels=[0, 2], zero_division=0)
    assert m["recall"] == pytest.approx(r.mean())
    assert m["confusion_matrix"][1] == [0, 0, 0]


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(DataError):
        metrics_from_proba(PROBA[:, :2], LABELS, NAMES)
    with pytest.raises(DataError):
        metrics_from_proba(PROBA, LABELS[:5], NAMES)


def test_assess_writes_png_plots_and_scores_the_model(tiny_cfg, tiny_split, tiny_spec, tmp_path: Path) -> None:  # noqa: ANN001
    result = fit(tiny_cfg, tiny_split.train, tiny_split.val, tiny_spec, progress=False)
    a = assess(result.model, tiny_split.test, tiny_spec, tmp_path / "plots", history=result.history)
    assert set(a.plots) == {"training_curves", "confusion_matrix", "roc_curves"}
    for path in a.plots.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    proba = predict_proba(result.model, tiny_split.test, tiny_spec)
    assert proba.shape == (len(tiny_split.test), 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert a.metrics == metrics_from_proba(proba, tiny_split.test.labels, tiny_split.test.class_names)
