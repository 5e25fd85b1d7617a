"""PNG plots for the assessment: training curves, confusion matrix, ROC curves.

Figures are drawn with matplotlib's object API on an Agg canvas, never through pyplot, so nothing depends on (or
changes) a global backend and it works on a headless machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure(width: float, height: float):  # noqa: ANN202 - matplotlib Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def training_curves_png(history: list[dict[str, float]], path: Path) -> Path:
    """Train and validation loss, and validation accuracy, per epoch."""
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig = _figure(9, 3.6)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_acc.plot(epochs, [h["val_acc"] for h in history], color="tab:green", label="validation accuracy")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend()
    fig.savefig(path)
    return Path(path)


def confusion_matrix_png(cm: list[list[int]], class_names: list[str], path: Path) -> Path:
    matrix = np.asarray(cm)
    k = len(class_names)
    size = min(14.0, 2.5 + 0.45 * k)
    fig = _figure(size, size)
    ax = fig.subplots()
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > threshold else "black")
    ax.set_title("Confusion matrix (test set)")
    fig.savefig(path)
    return Path(path)


def roc_curves_png(proba: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path) -> Path:
    """One-vs-rest ROC curve per class present in ``labels``, with its AUC in the legend."""
    from sklearn.metrics import auc, roc_curve

    fig = _figure(6.5, 5.5)
    ax = fig.subplots()
    for c, name in enumerate(class_names):
        positives = labels == c
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, proba[:, c])
        ax.plot(fpr, tpr, linewidth=1, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curves, one-vs-rest (test set)")
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path)
    return Path(path)
