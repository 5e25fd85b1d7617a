from __future__ import annotations

import numpy as np
import pytest

from edge_agent.engine.postprocess import build_postprocessor
from edge_agent.engine.preprocess import geometry
from models.manifest import InputSpec


def test_detection_output_rows_become_frame_boxes(make_manifest):
    decode = build_postprocessor(make_manifest("ssd", ["bg", "car", "dog"], shape=[1, 3, 300, 300],
                                               score_threshold=0.5))
    g = geometry(InputSpec(shape=[1, 3, 300, 300]), 600, 300)  # stretch: x * 2, y * 1
    rows = np.array([[[[0, 1, 0.9, 0.1, 0.2, 0.3, 0.4],
                       [0, 2, 0.4, 0.0, 0.0, 1.0, 1.0],  # below threshold
                       [0, 2, 0.7, 0.5, 0.5, 1.0, 1.0],
                       [-1, 0, 0.0, 0, 0, 0, 0]]]], np.float32)
    got = decode([rows], g)
    assert [(d.label, round(d.score, 2)) for d in got] == [("car", 0.9), ("dog", 0.7)]
    assert got[0].box == pytest.approx((60.0, 60.0, 180.0, 120.0))
    assert got[1].box == pytest.approx((300.0, 150.0, 600.0, 300.0))


def test_separate_boxes_scores_classes_tensors(make_manifest):
    decode = build_postprocessor(make_manifest("ssd", ["car", "dog"], shape=[1, 3, 100, 100], score_threshold=0.3,
                                               max_detections=1))
    g = geometry(InputSpec(shape=[1, 3, 100, 100]), 100, 100)
    boxes = np.array([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]], np.float32)
    scores = np.array([[0.6, 0.8]], np.float32)
    classes = np.array([[0, 1]], np.float32)
    (d,) = decode([boxes, scores, classes], g)
    assert (d.label, d.index, d.box) == ("dog", 1, pytest.approx((50.0, 50.0, 100.0, 100.0)))


def test_mismatched_tensor_lengths_are_an_error(make_manifest):
    decode = build_postprocessor(make_manifest("ssd", ["a"]))
    g = geometry(InputSpec(shape=[1, 3, 100, 100]), 100, 100)
    with pytest.raises(ValueError, match="disagree"):
        decode([np.zeros((1, 3, 4)), np.zeros((1, 2)), np.zeros((1, 3))], g)
