"""Assessment on the held-out test set: metrics from predicted probabilities, and PNG plots.

``metrics_from_proba`` needs only numpy arrays, so the same numbers can be computed for the torch model, the ONNX
model, the OpenVINO model and their INT8 variants. Accuracy, precision, recall, F1 and AUC are fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.manifest import InputSpec
from training.data import Dataset
from training.errors import DataError
from training.preprocess import to_tensor


@dataclass
class Assessment:
    metrics: dict[str, Any]
    plots: dict[str, Path] = field(default_factory=dict)
    proba: np.ndarray | None = None


def predict_proba(model: Any, dataset: Dataset, spec: InputSpec, *, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities (N, num_classes) of a torch model in eval mode."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            x = torch.from_numpy(to_tensor(dataset.images[start:start + batch_size], spec))
            out.append(torch.softmax(model(x), dim=1).numpy())
    if not out:
        return np.zeros((0, dataset.num_classes), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def metrics_from_proba(proba: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, one-vs-rest macro AUC-ROC, per-class figures and the confusion matrix.

    Keys: ``accuracy``, ``precision``, ``recall``, ``f1``, ``auc`` (None when fewer than two classes are present),
    ``n``, ``per_class`` {name: {precision, recall, f1, support, auc}}, ``confusion_matrix`` (rows = true class,
    columns = predicted, in ``class_names`` order).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    k = len(class_names)
    if proba.ndim != 2 or proba.shape[1] != k or len(proba) != len(labels):
        raise DataError(f"probabilities {proba.shape} do not match {len(labels)} labels and {k} classes")
    if len(labels) == 0:
        raise DataError("cannot compute metrics on an empty set")
    pred = proba.argmax(1)
    all_classes = list(range(k))
    p, r, f, support = precision_recall_fscore_support(labels, pred, labels=all_classes, zero_division=0)
    present = [c for c in all_classes if support[c] > 0]
    aucs: dict[int, float | None] = {c: None for c in all_classes}
    for c in present:
        positives = labels == c
        if 0 < positives.sum() < len(labels):
            aucs[c] = float(roc_auc_score(positives, proba[:, c]))
    valid = [a for a in aucs.values() if a is not None]
    cm = confusion_matrix(labels, pred, labels=all_classes)
    return {
        "n": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        # macro averages over the classes present in the labels, so an absent class does not count as a zero
        "precision": float(np.mean(p[present])),
        "recall": float(np.mean(r[present])),
        "f1": float(np.mean(f[present])),
        "auc": float(np.mean(valid)) if len(valid) >= 2 else None,
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i]),
                   "auc": aucs[i]}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.astype(int).tolist(),
    }


def assess(model: Any, test: Dataset, spec: InputSpec, out_dir: Path,
           history: list[dict[str, float]] | None = None) -> Assessment:
    """Score ``model`` on ``test`` and write confusion_matrix.png, roc_curves.png (and training_curves.png)."""
    from training import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    proba = predict_proba(model, test, spec)
    metrics = metrics_from_proba(proba, test.labels, test.class_names)
    written = {
        "confusion_matrix": plots.confusion_matrix_png(metrics["confusion_matrix"], test.class_names,
                                                       out_dir / "confusion_matrix.png"),
        "roc_curves": plots.roc_curves_png(proba, test.labels, test.class_names, out_dir / "roc_curves.png"),
    }
    if history:
        written["training_curves"] = plots.training_curves_png(history, out_dir / "training_curves.png")
    return Assessment(metrics, written, proba)
