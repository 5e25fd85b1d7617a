"""Drawing results on frames and writing them to a video file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.errors import ConfigError
from edge_agent.engine.postprocess import Classification, Detection, Result
from edge_agent.engine.render import VideoSink, colour, draw


def test_detection_box_is_drawn_in_its_class_colour():
    image = np.zeros((120, 160, 3), np.uint8)
    result = Result(0, 0.0, (Detection("car", 0.9, (20.0, 30.0, 100.0, 90.0), 2),), 1.0, 2.0)
    draw(image, result)
    assert tuple(image[60, 20]) == colour(2)  # left edge of the box
    assert image[60, 60].sum() == 0  # inside stays untouched


def test_classification_text_is_written_and_result_json_leaves_the_image_out():
    image = np.zeros((120, 160, 3), np.uint8)
    result = Result(3, 1.5, (Classification("cat", 0.8, 0),), 1.0, 2.0, image=image)
    draw(image, result, "status")
    assert image.sum() > 0
    data = result.to_dict()
    assert "image" not in data and data["results"] == [{"kind": "classification", "label": "cat", "score": 0.8,
                                                        "index": 0}]


def test_video_sink_writes_every_frame(tmp_path):
    sink = VideoSink(tmp_path / "out.avi", fps=10)
    for i in range(5):
        sink(Result(i, 0.0, (Classification("a", 0.5, 0),), 1.0, 2.0, image=np.full((48, 64, 3), 40 * i, np.uint8)))
    sink.close()
    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()


def test_video_sink_refuses_a_name_it_cannot_write(tmp_path):
    with pytest.raises(ConfigError, match=".mp4"):
        VideoSink(tmp_path / "out.gif")
    with pytest.raises(ConfigError, match="does not exist"):
        VideoSink(tmp_path / "missing" / "out.mp4")
