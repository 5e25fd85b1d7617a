"""YOLO-style detection output -> boxes in frame pixels.

Accepted layouts of the single output (batch 1), with C = number of labels and boxes (cx, cy, w, h) in
model-input pixels:
- YOLOv8: (1, 4 + C, N) or (1, N, 4 + C), class scores only;
- YOLOv5: (1, N, 5 + C) or transposed, an objectness column before the class scores (score = obj * class).
Boxes are scaled back through the preprocessing geometry (stretch or letterbox), clipped to the frame, then
suppressed class-wise (boxes of different classes never suppress each other)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_agent.engine.postprocess.base import POSTPROCESSORS
from edge_agent.engine.postprocess.nms import nms_per_class
from edge_agent.engine.postprocess.results import Detection
from edge_agent.engine.preprocess import Geometry
from models.manifest import Manifest


def to_rows(output: np.ndarray, num_classes: int) -> tuple[np.ndarray, bool]:
    """(N, C') rows and whether an objectness column is present."""
    a = np.asarray(output)
    if a.ndim == 3:
        if a.shape[0] != 1:
            raise ValueError(f"batch size must be 1, got output {a.shape}")
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"YOLO output must be (1, C, N) or (1, N, C), got {np.asarray(output).shape}")
    widths = (4 + num_classes, 5 + num_classes)
    if a.shape[1] not in widths and a.shape[0] in widths:
        a = a.T
    if a.shape[1] not in widths:
        raise ValueError(f"YOLO output {np.asarray(output).shape} does not fit {num_classes} labels "
                         f"(expected 4+{num_classes} or 5+{num_classes} values per box)")
    return a, a.shape[1] == 5 + num_classes


@POSTPROCESSORS.register("yolo")
class YoloDecoder:
    def __init__(self, manifest: Manifest, *, top_k: int = 3, score_threshold: float | None = None) -> None:
        self.labels = list(manifest.labels)
        out = manifest.output
        self.threshold = out.score_threshold if score_threshold is None else score_threshold
        self.iou = out.nms_iou
        self.max_detections = out.max_detections

    def __call__(self, outputs: Sequence[np.ndarray], geometry: Geometry) -> tuple[Detection, ...]:
        rows, has_objectness = to_rows(outputs[0], len(self.labels))
        if has_objectness:
            class_scores = rows[:, 5:] * rows[:, 4:5]
        else:
            class_scores = rows[:, 4:]
        classes = np.argmax(class_scores, axis=1)
        scores = class_scores[np.arange(len(rows)), classes]
        keep = scores >= self.threshold
        rows, classes, scores = rows[keep], classes[keep], scores[keep]
        cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        boxes = to_frame_boxes(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), geometry)
        kept = nms_per_class(boxes, scores, classes, self.iou, self.max_detections)
        return tuple(
            Detection(self.labels[int(classes[i])], float(scores[i]), tuple(float(v) for v in boxes[i]),
                      int(classes[i]))
            for i in kept
        )


def to_frame_boxes(xyxy_input: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Model-input pixel boxes -> frame pixel boxes, clipped to the frame when its size is known."""
    x1, y1 = geometry.to_frame(xyxy_input[:, 0], xyxy_input[:, 1])
    x2, y2 = geometry.to_frame(xyxy_input[:, 2], xyxy_input[:, 3])
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float64)
    if geometry.frame_width and geometry.frame_height:
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, geometry.frame_width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, geometry.frame_height)
    return boxes
