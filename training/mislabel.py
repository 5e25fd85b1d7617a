"""Likely label errors from cross-validated confidence (in the spirit of confident learning, Northcutt et al.).

A fast model (standardised, downscaled pixels -> multinomial logistic regression) is trained k times; every sample is
scored by the model that did *not* see it (out-of-fold), with near-duplicate groups kept inside one fold so a copy
cannot vouch for itself. A sample is a suspect when the probability of its given label is low and another class is
predicted with at least that class's typical self-confidence (the mean probability the model gives samples
labelled with it).

Limits: a linear model on raw pixels is a good judge for small, centred images (digits, icons) and a weak one for
photographs, where it mostly flags hard examples; suspects are therefore reported, and dropped only on request.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.preprocess import resize_image
from training.split import assign_groups

FEATURE_SIZE = 16


@dataclass
class Suspect:
    index: int
    given: int
    predicted: int
    p_given: float
    p_predicted: float


def features(images: np.ndarray, size: int = FEATURE_SIZE) -> np.ndarray:
    """Small images (<= ``size`` px): the raw pixels in [0, 1]. Larger ones: a gradient histogram of the 32x32
    grayscale image (orientation-binned, contrast-polarity invariant) plus an 8x8 colour thumbnail."""
    h, w = images.shape[1:3]
    if max(h, w) <= size:
        return images.reshape(len(images), -1).astype(np.float32) / 255.0
    rows = []
    for im in images:
        gray = im[:, :, 0] if im.shape[2] == 1 else cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY)
        thumb = resize_image(im, 8, 8).reshape(-1).astype(np.float32) / 255.0
        rows.append(np.concatenate([_gradient_histogram(resize_image(gray, 32, 32)), thumb]))
    return np.stack(rows)


def _gradient_histogram(gray: np.ndarray, cell: int = 8, bins: int = 9) -> np.ndarray:
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.hypot(gx, gy)
    orientation = np.minimum((np.degrees(np.arctan2(gy, gx)) % 180.0 / (180.0 / bins)).astype(np.int64), bins - 1)
    cells_y, cells_x = np.meshgrid(np.arange(g.shape[0]) // cell, np.arange(g.shape[1]) // cell, indexing="ij")
    hist = np.zeros((g.shape[0] // cell, g.shape[1] // cell, bins), dtype=np.float32)
    np.add.at(hist, (cells_y, cells_x, orientation), magnitude)
    flat = hist.reshape(-1)
    return flat / (np.linalg.norm(flat) + 1e-6)


def out_of_fold_proba(images: np.ndarray, labels: np.ndarray, num_classes: int, *, groups: np.ndarray | None = None,
                      folds: int = 5, seed: int = 0) -> np.ndarray:
    """(N, num_classes) probabilities, each row from a model trained on the other folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = features(images)
    fold_of = assign_groups(labels, [1.0] * folds, seed=seed, groups=groups)
    proba = np.zeros((len(labels), num_classes), dtype=np.float64)
    for f in range(folds):
        held = fold_of == f
        if not held.any():
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
        model.fit(x[~held], labels[~held])
        proba[np.ix_(held, model.classes_)] = model.predict_proba(x[held])
    return proba


def find_suspects(proba: np.ndarray, labels: np.ndarray, *, threshold: float = 0.2) -> list[Suspect]:
    """Samples whose given label has probability < ``threshold`` while another class is confidently predicted."""
    k = proba.shape[1]
    self_conf = np.array([proba[labels == c, c].mean() if (labels == c).any() else 1.0 for c in range(k)])
    out = []
    for i, (row, given) in enumerate(zip(proba, labels)):
        other = row.copy()
        other[given] = -1.0
        pred = int(other.argmax())
        if row[given] < threshold and row[pred] >= self_conf[pred]:
            out.append(Suspect(i, int(given), pred, float(row[given]), float(row[pred])))
    return out
