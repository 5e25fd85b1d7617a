"""SSD-style detection outputs -> boxes in frame pixels. Coordinates are normalised to the model input (0..1).

Two layouts are accepted:
- one DetectionOutput tensor (1, 1, N, 7) rows ``[image_id, label, score, x1, y1, x2, y2]`` (Caffe/OpenVINO);
- separate tensors ``boxes (1, N, 4) as x1, y1, x2, y2``, ``scores (1, N)``, ``classes (1, N)`` in that order
  (a trailing ``count`` tensor is ignored).
The model has already suppressed overlaps; the agent thresholds, scales back and caps the count."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_agent.engine.postprocess.base import POSTPROCESSORS
from edge_agent.engine.postprocess.results import Detection
from edge_agent.engine.postprocess.yolo import to_frame_boxes
from edge_agent.engine.preprocess import Geometry
from models.manifest import Manifest


def split_outputs(outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes N x 4, scores N, classes N) from either layout."""
    first = np.asarray(outputs[0])
    if first.shape[-1] == 7 and len(outputs) == 1:
        rows = first.reshape(-1, 7)
        rows = rows[rows[:, 0] >= 0]  # image_id -1 marks the end of valid rows
        return rows[:, 3:7], rows[:, 2], rows[:, 1]
    if len(outputs) < 3:
        raise ValueError("SSD outputs must be one (1, 1, N, 7) tensor or boxes, scores, classes")
    boxes = first.reshape(-1, 4)
    scores = np.asarray(outputs[1]).reshape(-1)
    classes = np.asarray(outputs[2]).reshape(-1)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(f"SSD outputs disagree in length: {len(boxes)} boxes, {len(scores)} scores, "
                         f"{len(classes)} classes")
    return boxes, scores, classes


@POSTPROCESSORS.register("ssd")
class SsdDecoder:
    def __init__(self, manifest: Manifest, *, top_k: int = 3, score_threshold: float | None = None) -> None:
        self.labels = list(manifest.labels)
        self.input_w, self.input_h = manifest.input.width, manifest.input.height
        self.threshold = manifest.output.score_threshold if score_threshold is None else score_threshold
        self.max_detections = manifest.output.max_detections

    def __call__(self, outputs: Sequence[np.ndarray], geometry: Geometry) -> tuple[Detection, ...]:
        boxes, scores, classes = split_outputs(outputs)
        classes = classes.astype(np.int64)
        keep = (scores >= self.threshold) & (classes >= 0) & (classes < len(self.labels))
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        order = np.argsort(-scores, kind="stable")[: self.max_detections]
        pixels = boxes[order].astype(np.float64) * np.array([self.input_w, self.input_h] * 2)
        frame_boxes = to_frame_boxes(pixels, geometry)
        return tuple(
            Detection(self.labels[int(classes[i])], float(scores[i]), tuple(float(v) for v in frame_boxes[n]),
                      int(classes[i]))
            for n, i in enumerate(order)
        )
