"""Class-wise non-maximum suppression (OpenCV's batched NMS: boxes of different classes never suppress each other)."""

from __future__ import annotations

import cv2
import numpy as np


def nms_per_class(boxes_xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float,
                  max_detections: int) -> np.ndarray:
    """Indices kept, best score first."""
    if len(scores) == 0:
        return np.empty(0, dtype=np.int64)
    xywh = boxes_xyxy.astype(np.float64).copy()
    xywh[:, 2:] -= xywh[:, :2]
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.astype(float).tolist(), classes.astype(int).tolist(),
                                   0.0, float(iou))
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return keep[:max_detections]
