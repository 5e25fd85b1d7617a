"""Shadow evaluation on the real agent (real onnxruntime, real signed packages, real broker): a new model runs beside
the serving one on the same live frames before any switch; it switches only when it agrees enough, and the
comparison is reported before the switch. Plus the agreement rules themselves (top-1, boxes at IoU 0.5)."""

from __future__ import annotations

import re

import pytest

from edgefleet import protocol
from edge_agent.engine.postprocess.results import Classification, Detection
from edge_agent.fleet.shadow import ShadowPolicy, box_agreement, frame_agreement
from tests.edge_agent.conftest import tiny_onnx_bytes
from tests.edge_agent.fleet.test_health import agent, desire  # noqa: F401 - the fixture and helper are shared

SHADOW = {"window_s": 1.5, "min_agreement": 0.9}


def onnx_negated() -> bytes:
    """The tiny classifier with its weights negated: on the camera's (non-negative) pixels its top-1 class is the
    current model's bottom one, every frame."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(tiny_onnx_bytes())
    weights = model.graph.initializer[0]
    weights.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(weights).astype(np.float32), "W"))
    return model.SerializeToString()


def test_a_shadow_run_switches_an_agreeing_model_and_refuses_a_disagreeing_one(agent, probe, packages,  # noqa: F811
                                                                             agent_config):
    dev = agent_config.device_id
    topic = protocol.twin_reported_topic(dev)
    packages.trust(agent.state)
    first = packages.cache(agent.state, packages.make("1"))
    reported = desire(probe, dev, 1, first, shadow=SHADOW)
    # nothing served yet, so nothing to compare with: the first model switches without a shadow run
    assert reported["properties"]["update"] == {"sha256": first.sha256, "state": "succeeded", "reason": None}
    pipeline = agent.host._running.pipeline
    with agent._seen:
        before = len(agent.indices)

    same = packages.cache(agent.state, packages.make("2"))
    reported = desire(probe, dev, 2, same, shadow=SHADOW)
    update = reported["properties"]["update"]
    assert update["state"] == "succeeded" and reported["model"]["version"] == "2", reported
    shadow = update["shadow"]
    assert shadow["agreement"] == 1.0 and shadow["frames"] >= 3 and shadow["failed"] == 0
    assert shadow["p95_ms_current"] > 0 and shadow["p95_ms_new"] > 0 and shadow["min_agreement"] == 0.9
    # the comparison was reported before the switch: a twin with the numbers while version 1 still served
    checking = probe.last(topic, lambda d: d["properties"].get("update", {}).get("state") == "checking"
                          and d["properties"]["update"]["sha256"] == same.sha256)
    assert checking["model"]["version"] == "1" and checking["properties"]["update"]["shadow"]["agreement"] == 1.0

    other = packages.cache(agent.state, packages.make("3", onnx=onnx_negated()))
    reported = desire(probe, dev, 3, other, shadow=SHADOW)
    update = reported["properties"]["update"]
    assert update["state"] == "failed" and update["reason"] == "shadow agreement 0.000 < 0.9", update
    assert update["shadow"]["agreement"] == 0.0 and update["shadow"]["frames"] >= 3
    assert reported["model"]["version"] == "2" and reported["slot"] == "B"  # never switched
    assert "model tiny 3 not switched: shadow agreement" in reported["last_error"]
    # one pipeline all along, one swap (to 2), and results kept flowing in frame order through both shadow runs
    assert agent.host._running.pipeline is pipeline and agent.host.swaps == 1
    with agent._seen:
        indices = list(agent.indices)
    assert len(indices) - before >= 30 and all(a < b for a, b in zip(indices, indices[1:]))


def test_a_malformed_shadow_block_refuses_the_switch_with_the_reason(agent, probe, packages,  # noqa: F811
                                                                     agent_config):
    dev = agent_config.device_id
    packages.trust(agent.state)
    desire(probe, dev, 1, packages.cache(agent.state, packages.make("1")))
    second = packages.cache(agent.state, packages.make("2"))
    reported = desire(probe, dev, 2, second, shadow={"window_s": 5, "min_agreement": 1.5})
    update = reported["properties"]["update"]
    assert update["state"] == "failed" and "min_agreement must be a number in [0, 1], got 1.5" in update["reason"]
    assert reported["model"]["version"] == "1"


def cls(index: int) -> Classification:
    return Classification(label=str(index), score=0.9, index=index)


def box(index: int, x1: float, y1: float, x2: float, y2: float) -> Detection:
    return Detection(label=str(index), score=0.9, box=(x1, y1, x2, y2), index=index)


def test_classification_agreement_is_the_top1_class() -> None:
    assert frame_agreement((cls(1), cls(2)), (cls(1), cls(0))) == 1.0
    assert frame_agreement((cls(1), cls(2)), (cls(2), cls(1))) == 0.0
    assert frame_agreement((), ()) == 1.0 and frame_agreement((cls(1),), ()) == 0.0


def test_box_agreement_matches_same_class_boxes_at_iou_one_half() -> None:
    a = box(0, 0, 0, 10, 10)
    assert box_agreement([a], [box(0, 1, 1, 11, 11)]) == 1.0  # IoU 81/119 = 0.68
    assert box_agreement([a], [box(0, 5, 0, 15, 10)]) == 0.0  # IoU 50/150 = 0.33
    assert box_agreement([a], [box(1, 0, 0, 10, 10)]) == 0.0  # same place, other class
    assert box_agreement([], []) == 1.0 and box_agreement([a], []) == 0.0
    # each box is matched at most once, the best overlap first; the larger count is the denominator
    current = [box(0, 0, 0, 10, 10), box(0, 100, 100, 110, 110), box(2, 50, 50, 60, 60)]
    new = [box(0, 0, 0, 10, 10), box(0, 0, 0, 10, 11), box(2, 50, 50, 60, 61)]
    assert box_agreement(current, new) == pytest.approx(2 / 3)
    assert frame_agreement(current, new) == pytest.approx(2 / 3)  # detections are compared as boxes


@pytest.mark.parametrize("block, why", [
    ({"window_s": 0}, "window_s must be a number in (0, 3600], got 0"),
    ({"window_s": True}, "window_s must be a number in (0, 3600], got True"),
    ({"window_s": 10, "min_agreement": -0.1}, "min_agreement must be a number in [0, 1]"),
    ("30s", "properties.shadow must be an object"),
])
def test_a_shadow_block_is_validated(block, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        ShadowPolicy.from_properties({"shadow": block})
    assert ShadowPolicy.from_properties({}) is None
    assert ShadowPolicy.from_properties({"shadow": {"window_s": 30}}) == ShadowPolicy(30.0, 0.0)
