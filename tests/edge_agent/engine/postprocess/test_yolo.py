from __future__ import annotations

import numpy as np
import pytest

from edge_agent.engine.postprocess import build_postprocessor
from edge_agent.engine.preprocess import Geometry, geometry
from models.manifest import InputSpec

IDENTITY = Geometry(1.0, 1.0, 0.0, 0.0, 100, 100)


def v8(rows: list[tuple[float, float, float, float, float, float]]) -> np.ndarray:
    """(1, 4 + 2, N) from rows (cx, cy, w, h, score_class0, score_class1)."""
    return np.array(rows, np.float32).T[None]


def test_overlapping_boxes_of_one_class_are_suppressed(make_manifest):
    decode = build_postprocessor(make_manifest("yolo", ["car", "person"], score_threshold=0.3, nms_iou=0.5))
    out = v8([(50, 50, 20, 20, 0.9, 0.0), (51, 51, 20, 20, 0.8, 0.0), (10, 10, 8, 8, 0.6, 0.0)])
    got = decode([out], IDENTITY)
    assert [(d.label, round(d.score, 2)) for d in got] == [("car", 0.9), ("car", 0.6)]
    assert got[0].box == pytest.approx((40, 40, 60, 60))


def test_overlapping_boxes_of_different_classes_both_survive(make_manifest):
    decode = build_postprocessor(make_manifest("yolo", ["car", "person"], score_threshold=0.3))
    out = v8([(50, 50, 20, 20, 0.9, 0.1), (50, 50, 20, 20, 0.1, 0.8)])
    assert sorted(d.label for d in decode([out], IDENTITY)) == ["car", "person"]


def test_low_scores_are_dropped_and_max_detections_caps(make_manifest):
    decode = build_postprocessor(make_manifest("yolo", ["a", "b"], score_threshold=0.5, max_detections=2))
    out = v8([(10 + 20 * i, 10, 5, 5, 0.55 + 0.1 * i, 0.0) for i in range(4)] + [(90, 90, 5, 5, 0.2, 0.3)])
    got = decode([out], IDENTITY)
    assert [round(d.score, 2) for d in got] == [0.85, 0.75]


def test_yolov5_rows_with_objectness_multiply_scores(make_manifest):
    decode = build_postprocessor(make_manifest("yolo", ["a", "b"], score_threshold=0.3))
    out = np.array([[[50, 50, 10, 10, 0.5, 0.2, 0.9], [20, 20, 10, 10, 0.4, 0.9, 0.1]]], np.float32)  # (1, N, 5+2)
    got = decode([out], IDENTITY)
    assert [(d.label, round(d.score, 2)) for d in got] == [("b", 0.45), ("a", 0.36)]


def test_boxes_are_scaled_back_through_the_letterbox_to_frame_pixels(make_manifest):
    spec = InputSpec(shape=[1, 3, 320, 320], resize="letterbox")
    g = geometry(spec, 640, 480)  # scale 0.5, 40 px of padding on top
    decode = build_postprocessor(make_manifest("yolo", ["a"], shape=[1, 3, 320, 320], score_threshold=0.1))
    (d,) = decode([np.array([[[160.0], [160.0], [100.0], [50.0], [0.9]]], np.float32)], g)
    assert d.box == pytest.approx((220.0, 190.0, 420.0, 290.0))


def test_output_that_does_not_fit_the_labels_is_an_error(make_manifest):
    decode = build_postprocessor(make_manifest("yolo", ["a", "b"]))
    with pytest.raises(ValueError, match="does not fit 2 labels"):
        decode([np.zeros((1, 9, 30), np.float32)], IDENTITY)
