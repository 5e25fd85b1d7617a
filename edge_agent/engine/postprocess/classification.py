"""Classification: class scores -> the top-k labels.

``logits``: the model ends in raw logits, the agent applies softmax. ``softmax``: the package promises a
probability output; a model that in fact emits logits (negative values or rows not summing to 1) still gets
softmax applied, so scores are always probabilities in [0, 1].

This runs once per frame on the inference runtime's callback thread, holding the GIL: a classifier's usual
few dozen scores are decoded with plain Python floats, cheaper than a dozen small numpy calls at that size; larger
outputs take the numpy path. Both compute in float64 and break ties by the lower class index."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edge_agent.engine.postprocess.base import POSTPROCESSORS
from edge_agent.engine.postprocess.results import Classification
from edge_agent.engine.preprocess import Geometry
from models.manifest import Manifest


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(), dtype=np.float64)
    return e / e.sum()


def is_distribution(x: np.ndarray) -> bool:
    return bool(np.all(x >= 0.0) and abs(float(x.sum()) - 1.0) < 1e-3)


def top_k(probabilities: np.ndarray, labels: Sequence[str], k: int) -> tuple[Classification, ...]:
    k = min(k, probabilities.size)
    if probabilities.size <= 256:  # one sort beats partition + sort on small outputs
        idx = np.argsort(-probabilities, kind="stable")[:k]
    else:
        idx = np.argpartition(-probabilities, k - 1)[:k]
        idx = idx[np.argsort(-probabilities[idx], kind="stable")]
    return tuple(Classification(_label(labels, int(i)), float(probabilities[i]), int(i)) for i in idx)


SMALL = 64  # outputs up to this many scores are decoded with Python floats


def decode_small(scores: list[float], labels: Sequence[str], k: int, always_softmax: bool,
                 min_score: float) -> tuple[Classification, ...]:
    """The same as softmax (when needed) + top_k, on a short list of floats."""
    if always_softmax or not (min(scores) >= 0.0 and abs(math.fsum(scores) - 1.0) < 1e-3):
        top = max(scores)
        exps = [math.exp(v - top) for v in scores]
        total = math.fsum(exps)
        scores = [e / total for e in exps]
    best = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:k]  # stable: ties keep index order
    return tuple(Classification(_label(labels, i), scores[i], i) for i in best if scores[i] >= min_score)


def _label(labels: Sequence[str], i: int) -> str:
    return labels[i] if i < len(labels) else str(i)


@POSTPROCESSORS.register("softmax")
@POSTPROCESSORS.register("logits")
class ClassificationDecoder:
    def __init__(self, manifest: Manifest, *, top_k: int = 3, score_threshold: float | None = None) -> None:
        self.labels = list(manifest.labels)
        self.k = top_k
        self.always_softmax = manifest.output.decoding == "logits"
        self.min_score = score_threshold if score_threshold is not None else 0.0

    def __call__(self, outputs: Sequence[np.ndarray], geometry: Geometry | None = None) -> tuple[Classification, ...]:
        scores = np.asarray(outputs[0]).reshape(-1)
        if scores.size != len(self.labels):
            raise ValueError(f"model gave {scores.size} scores for {len(self.labels)} labels")
        if scores.size <= SMALL:
            return decode_small(scores.tolist(), self.labels, self.k, self.always_softmax, self.min_score)
        probs = softmax(scores) if self.always_softmax or not is_distribution(scores) else scores
        return tuple(c for c in top_k(probs, self.labels, self.k) if c.score >= self.min_score)
