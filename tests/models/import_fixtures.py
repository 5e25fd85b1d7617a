"""Models shaped and labelled like Ultralytics exports, built with onnx.helper, whose outputs a test can compute by
hand: the detector's class scores are a sigmoid of the frame's mean colour, its boxes are fixed, so a solid red
frame must give exactly one "red thing" at a known place."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAMES = {0: "red thing", 1: "green thing", 2: "blue thing"}
SIZE = 64  # detector input, square
# Candidate boxes (cx, cy, w, h) in input pixels and the colour channel each one's class follows. Candidate 2 is
# candidate 0 moved by 1 px with a lower score: class-wise NMS must suppress it.
BOXES = [(32.0, 32.0, 32.0, 16.0), (16.0, 40.0, 8.0, 8.0), (33.0, 32.0, 32.0, 16.0)]
CHANNEL_OF = [0, 1, 0]
GAIN, OFFSET2 = 10.0, 1.0


def _save(graph: onnx.GraphProto, path: Path, props: dict[str, str]) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def ultralytics_props(task: str, names: dict[int, str] = NAMES, imgsz: int = SIZE, **more: str) -> dict[str, str]:
    """The metadata keys and value formats an Ultralytics ONNX export writes."""
    props = {"description": f"Ultralytics test model ({task})", "author": "test", "version": "8.3.0",
             "stride": "32", "task": task, "batch": "1", "imgsz": str([imgsz, imgsz]), "names": str(names)}
    props.update(more)
    return props


def expected_score(channel_mean: float, candidate: int) -> float:
    """What the detector gives candidate ``candidate`` for its class when that channel's mean (0..1) is given."""
    z = GAIN * (channel_mean - 0.5) - (OFFSET2 if candidate == 2 else 0.0)
    return 1.0 / (1.0 + math.exp(-z))


def detector(path: Path, props: dict[str, str] | None = None, head: str = "v8") -> Path:
    """YOLOv8-style (1, 4 + C, N) with sigmoid class scores, or YOLOv5-style (1, N, 5 + C) with objectness 1.

    score[c, n] = sigmoid(GAIN * (mean channel c - 0.5) - offset[n]) where candidate n follows class c, and a
    sure miss (-20) elsewhere: Gemm over the pooled RGB means, then Sigmoid."""
    classes, n = len(NAMES), len(BOXES)
    w = np.zeros((classes * n, 3), np.float32)
    b = np.full(classes * n, -20.0, np.float32)
    for cand, channel in enumerate(CHANNEL_OF):
        row = channel * n + cand  # (class, candidate) flattened class-major, as the reshape below reads it
        w[row, channel] = GAIN
        b[row] = -GAIN * 0.5 - (OFFSET2 if cand == 2 else 0.0)
    boxes = np.array(BOXES, np.float32).T[None]  # (1, 4, N)
    init = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
            numpy_helper.from_array(boxes, "boxes"), numpy_helper.from_array(np.array([1, classes, n]), "shape")]
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["means"]),
             helper.make_node("Gemm", ["means", "w", "b"], ["z"], transB=1),
             helper.make_node("Sigmoid", ["z"], ["s"]),
             helper.make_node("Reshape", ["s", "shape"], ["scores"])]
    if head == "v8":
        nodes.append(helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1))
        out_shape = [1, 4 + classes, n]
    else:
        init.append(numpy_helper.from_array(np.ones((1, 1, n), np.float32), "objectness"))
        nodes += [helper.make_node("Concat", ["boxes", "objectness", "scores"], ["rows"], axis=1),
                  helper.make_node("Transpose", ["rows"], ["output0"], perm=[0, 2, 1])]
        out_shape = [1, n, 5 + classes]
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])], [helper.make_tensor_value_info(
            "output0", TensorProto.FLOAT, out_shape)], init)
    return _save(graph, path, props if props is not None else ultralytics_props("detect"))


def classifier(path: Path, size: int = 32, props: dict[str, str] | None = None) -> Path:
    """Mean colour -> softmax over red/green/blue, like an Ultralytics classify export (softmax inside)."""
    init = [numpy_helper.from_array(np.eye(3, dtype=np.float32) * GAIN, "w"),
            numpy_helper.from_array(np.zeros(3, np.float32), "b")]
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["means"]),
             helper.make_node("Gemm", ["means", "w", "b"], ["z"], transB=1),
             helper.make_node("Softmax", ["z"], ["output0"], axis=1)]
    graph = helper.make_graph(nodes, "classifier", [helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, [1, 3, size, size])], [helper.make_tensor_value_info(
            "output0", TensorProto.FLOAT, [1, 3])], init)
    names = {0: "red", 1: "green", 2: "blue"}
    return _save(graph, path, props if props is not None else ultralytics_props("classify", names, size))


def constant_model(path: Path, inputs: list[tuple[str, list, int]], outputs: list[list[int]],
                   props: dict[str, str]) -> Path:
    """Inputs of any shape and type (unused) and constant outputs of the given shapes: enough for the importer,
    which must refuse these before anything runs them."""
    init = [numpy_helper.from_array(np.zeros(shape, np.float32), f"c{i}") for i, shape in enumerate(outputs)]
    nodes = [helper.make_node("Identity", [f"c{i}"], [f"output{i}"]) for i in range(len(outputs))]
    graph = helper.make_graph(nodes, "constant", [helper.make_tensor_value_info(n, t, s) for n, s, t in inputs],
                              [helper.make_tensor_value_info(f"output{i}", TensorProto.FLOAT, s)
                               for i, s in enumerate(outputs)], init)
    return _save(graph, path, props)


def to_openvino_ir(onnx_path: Path, xml_path: Path, labels: list[str] | None = None) -> Path:
    """Convert with OpenVINO itself (ONNX metadata lands in rt_info/framework); ``labels``: also write the model_info
    keys the Ultralytics OpenVINO exporter sets."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    if labels is not None:
        model.set_rt_info("YOLO", ["model_info", "model_type"])
        model.set_rt_info(114, ["model_info", "pad_value"])
        model.set_rt_info([v.replace(" ", "_") for v in labels], ["model_info", "labels"])
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path
