"""`edgefleet model import`: Ultralytics-style exports become signed packages the agent's real engine decodes
correctly (boxes and labels checked on a known frame, onnxruntime and OpenVINO), and models the agent could not run
are refused with exit 2 and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto

from edge_agent.engine.backends import Selection, load_model
from edge_agent.engine.postprocess import build_postprocessor
from edge_agent.engine.preprocess import Preprocessor, geometry
from edgefleet.cli import cli
from edgefleet.paths import signing_key_path, signing_public_key_path
from models.importer import yolo_head
from models.manifest import Manifest
from models.package import unpack, verify
from tests.models import import_fixtures as fx

RED, GREEN = (0, 0, 255), (0, 255, 0)  # BGR, as a camera frame is
FRAME_W, FRAME_H = 128, 64  # letterboxed onto 64x64: scale 0.5, 16 px of grey above and below


def run(*args: str | Path):
    return CliRunner().invoke(cli, ["model", "import", *map(str, args)])


def import_ok(model: Path, tmp_path: Path, *extra: str | Path) -> tuple[Path, Manifest]:
    """Import with the default (fleet) key of a fresh state dir; return the package and its verified manifest."""
    state = tmp_path / "state"
    result = run(model, "--out", tmp_path / "out", "--state-dir", state, "--json", *extra)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    pkg = Path(doc["package"])
    assert signing_key_path(state).is_file()
    manifest = verify(pkg, signing_public_key_path(state))
    assert manifest.model_dump(mode="json") == doc["manifest"]
    return pkg, manifest


def infer(pkg: Path, public_key: Path, backend: str, frame: np.ndarray, dest: Path):
    """The agent's own path: verified unpack, backend load, preprocessing, inference, decoding."""
    manifest = unpack(pkg, dest, public_key)
    model = load_model(dest, manifest, Selection(backend, "CPU", "test"))
    try:
        outputs = model.infer(Preprocessor(manifest.input)(frame))
    finally:
        model.close()
    return build_postprocessor(manifest)(outputs, geometry(manifest.input, frame.shape[1], frame.shape[0]))


def solid(bgr: tuple[int, int, int], w: int = FRAME_W, h: int = FRAME_H) -> np.ndarray:
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = bgr
    return frame


def letterboxed_mean(value: int) -> float:
    """A channel's mean over the 64x64 input: half the frame's value, half the grey 114 padding, scaled to 0..1."""
    return (value + 114) / 2 / 255


def frame_box(candidate: int) -> tuple[float, float, float, float]:
    cx, cy, w, h = fx.BOXES[candidate]
    return (2 * (cx - w / 2), 2 * (cy - h / 2 - 16), 2 * (cx + w / 2), 2 * (cy + h / 2 - 16))


@pytest.fixture(scope="module")
def yolov8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.detector(tmp_path_factory.mktemp("v8") / "yolov8n.onnx")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_ultralytics_detector_needs_no_flags_and_the_agent_finds_the_known_boxes(yolov8, tmp_path, backend):
    pkg, manifest = import_ok(yolov8, tmp_path)
    assert (manifest.name, manifest.version, manifest.task) == ("yolov8n", "1.0.0", "detection")
    assert manifest.labels == list(fx.NAMES.values())
    assert manifest.input.shape == [1, 3, 64, 64] and manifest.input.resize == "letterbox"
    assert manifest.output.decoding == "yolo" and manifest.training["yolo_head"] == "v8"
    pub = signing_public_key_path(tmp_path / "state")
    red = infer(pkg, pub, backend, solid(RED), tmp_path / "red")
    assert [d.label for d in red] == ["red thing"]  # candidate 2 overlaps candidate 0: suppressed
    # OpenVINO's CPU plug-in runs an FP32 model in bf16 where the CPU has it (AVX512-BF16, AMX): ~1e-3 off.
    score_tolerance = 1e-4 if backend == "onnxruntime" else 5e-3
    assert red[0].score == pytest.approx(fx.expected_score(letterboxed_mean(255), 0), abs=score_tolerance)
    assert red[0].box == pytest.approx(frame_box(0), abs=1e-3)
    green = infer(pkg, pub, backend, solid(GREEN), tmp_path / "green")
    assert [(d.label, d.index) for d in green] == [("green thing", 1)]
    assert green[0].box == pytest.approx(frame_box(1), abs=1e-3)


def test_yolov5_repo_export_with_objectness_decodes_the_same(tmp_path):
    props = {"stride": "32", "names": str(fx.NAMES)}  # what the YOLOv5 repo's exporter writes: no task, no imgsz
    model = fx.detector(tmp_path / "yolov5s.onnx", props, head="v5")
    pkg, manifest = import_ok(model, tmp_path)
    assert manifest.task == "detection" and manifest.training["yolo_head"] == "v5"
    red = infer(pkg, signing_public_key_path(tmp_path / "state"), "onnxruntime", solid(RED), tmp_path / "u")
    assert [d.label for d in red] == ["red thing"]
    assert red[0].box == pytest.approx(frame_box(0), abs=1e-3)


def test_labels_file_overrides_the_model_names(yolov8, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("apple\n\nleaf\nsky\n")
    pkg, manifest = import_ok(yolov8, tmp_path, "--labels", labels, "--name", "fruit", "--version", "2.1")
    assert manifest.labels == ["apple", "leaf", "sky"] and manifest.package_filename == "fruit-2.1.efpkg"
    red = infer(pkg, signing_public_key_path(tmp_path / "state"), "onnxruntime", solid(RED), tmp_path / "u")
    assert [d.label for d in red] == ["apple"]


def test_ultralytics_classifier_needs_no_flags(tmp_path):
    pkg, manifest = import_ok(fx.classifier(tmp_path / "yolov8n-cls.onnx"), tmp_path)
    assert manifest.task == "classification" and manifest.output.decoding == "softmax"
    assert manifest.labels == ["red", "green", "blue"] and manifest.input.shape == [1, 3, 32, 32]
    top = infer(pkg, signing_public_key_path(tmp_path / "state"), "onnxruntime", solid(GREEN, 40, 30), tmp_path / "u")
    z = np.array([0.0, fx.GAIN, 0.0])
    assert [c.label for c in top] == ["green", "red", "blue"]
    assert top[0].score == pytest.approx(float(np.exp(z[1]) / np.exp(z).sum()), abs=1e-4)


def test_openvino_ir_converted_from_the_export_reads_its_rt_info(yolov8, tmp_path):
    xml = fx.to_openvino_ir(yolov8, tmp_path / "yolov8n.xml")
    pkg, manifest = import_ok(xml, tmp_path)
    assert manifest.runtimes.openvino is not None and manifest.runtimes.onnx is None
    assert manifest.labels == list(fx.NAMES.values()) and manifest.task == "detection"
    red = infer(pkg, signing_public_key_path(tmp_path / "state"), "openvino", solid(RED), tmp_path / "u")
    assert [d.label for d in red] == ["red thing"] and red[0].box == pytest.approx(frame_box(0), abs=1e-3)


def test_openvino_ir_with_metadata_yaml_beside_it(tmp_path):
    yaml = pytest.importorskip("yaml")
    bare = fx.detector(tmp_path / "bare.onnx", props={})
    folder = tmp_path / "yolov8n_openvino_model"
    folder.mkdir()
    xml = fx.to_openvino_ir(bare, folder / "yolov8n.xml", labels=list(fx.NAMES.values()))
    assert import_refused(xml, tmp_path / "a").startswith("yolov8n.xml does not say what it does")
    meta = {"description": "Ultralytics", "stride": 32, "task": "detect", "batch": 1, "imgsz": [64, 64],
            "names": dict(fx.NAMES)}
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    _, manifest = import_ok(xml, tmp_path)
    assert manifest.labels == list(fx.NAMES.values())  # the yaml's names, not the xml's underscored labels


def import_refused(model: Path, tmp_path: Path, *extra: str | Path) -> str:
    """Run an import that must be refused: exit 2, one reason, no package and no key written. Returns the reason."""
    out, state = tmp_path / "out", tmp_path / "state"
    result = run(model, "--out", out, "--state-dir", state, "--json", *extra)
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["kind"] == "ImportRefused"
    assert not out.exists() and not state.exists()
    return doc["error"]


IMAGE = ("images", [1, 3, 64, 64], TensorProto.FLOAT)


REFUSALS = [
    ("two-inputs", [IMAGE, ("depth", [1, 1, 64, 64], TensorProto.FLOAT)], [[1, 7, 84]],
     fx.ultralytics_props("detect"), "has 2 inputs (images, depth)"),
    ("dynamic-no-imgsz", [("images", [1, 3, "h", "w"], TensorProto.FLOAT)], [[1, 7, 84]],
     {"task": "detect", "names": str(fx.NAMES)}, "dynamic dimensions (1, 3, ?, ?) and no imgsz"),
    ("dynamic-with-imgsz", [("images", ["b", 3, "h", "w"], TensorProto.FLOAT)], [[1, 7, 84]],
     fx.ultralytics_props("detect"), "metadata says imgsz 64x64); the agent sizes its input buffers"),
    ("no-decoding", [IMAGE], [[1, 10, 84]], fx.ultralytics_props("detect"), "match no decoding"),
    ("ambiguous", [IMAGE], [[1, 7, 8]], {"names": str(fx.NAMES), "stride": "32"}, "match no decoding"),
    ("two-outputs", [IMAGE], [[1, 7, 84], [1, 32, 16, 16]], fx.ultralytics_props("detect"), "match no decoding"),
    ("segment", [IMAGE], [[1, 39, 84], [1, 32, 16, 16]], fx.ultralytics_props("segment"), "'segment' model"),
    ("pose", [IMAGE], [[1, 56, 84]], fx.ultralytics_props("pose", {0: "person"}), "'pose' model"),
    ("obb", [IMAGE], [[1, 8, 84]], fx.ultralytics_props("obb"), "'obb' model"),
    ("end2end", [IMAGE], [[1, 300, 6]], fx.ultralytics_props("detect", end2end="True"), "end-to-end"),
    ("half", [("images", [1, 3, 64, 64], TensorProto.FLOAT16)], [[1, 7, 84]], fx.ultralytics_props("detect"),
     "is float16"),
    ("batch", [("images", [4, 3, 64, 64], TensorProto.FLOAT)], [[4, 7, 84]], fx.ultralytics_props("detect"),
     "input batch is 4"),
    ("wrong-classes", [IMAGE], [[1, 5]], fx.ultralytics_props("classify"), "not one (1, 3) score vector"),
    ("no-task", [IMAGE], [[1, 3]], {}, "does not say what it does"),
    ("code-in-names", [IMAGE], [[1, 3]], {"task": "classify", "names": "__import__('os').getpid()"},
     "metadata 'names' is not a Python literal"),
]


@pytest.mark.parametrize("case, inputs, outputs, props, says", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_models_the_agent_cannot_run_are_refused(tmp_path, case, inputs, outputs, props, says):
    model = fx.constant_model(tmp_path / f"{case}.onnx", inputs, outputs, props)
    assert says in import_refused(model, tmp_path)


def test_labels_that_do_not_fit_the_output_and_a_task_the_model_denies_are_refused(yolov8, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("one\ntwo\n")
    # (1, 7, 3) would fit 5 + 2 (a YOLOv5 layout): the Ultralytics task says it cannot be
    assert "with 2 labels gives (1, 6, N), not (1, 7, 3)" in import_refused(yolov8, tmp_path / "a", "--labels", labels)
    labels.write_text("one\ntwo\nthree\nfour\n")
    assert "match no decoding the agent knows for 4 labels" in import_refused(yolov8, tmp_path / "c", "--labels",
                                                                              labels)
    assert "says it is a 'detect' model, not classification" in import_refused(yolov8, tmp_path / "b", "--task",
                                                                                "classification")


def test_a_plain_model_imports_with_task_and_labels(tmp_path):
    model = fx.classifier(tmp_path / "colours.onnx", props={})
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(["r", "g", "b"]))
    assert "carries no class names" in import_refused(model, tmp_path / "a", "--task", "classification")
    _, manifest = import_ok(model, tmp_path, "--task", "classification", "--labels", labels)
    assert manifest.labels == ["r", "g", "b"] and manifest.training["source"] == "external"


def test_human_output_and_an_explicit_key(yolov8, tmp_path):
    from models.signing import generate_private_key, private_key_pem, public_key_pem

    key = generate_private_key()
    (tmp_path / "k.pem").write_bytes(private_key_pem(key))
    result = run(yolov8, "--out", tmp_path / "out", "--key", tmp_path / "k.pem", "--state-dir", tmp_path / "state")
    assert result.exit_code == 0, result.output
    assert "yolov8n 1.0.0 detection, input [1, 3, 64, 64], 3 labels, decoding yolo (v8)" in result.stdout
    verify(tmp_path / "out" / "yolov8n-1.0.0.efpkg", public_key_pem(key))
    assert not (tmp_path / "state").exists()  # the fleet key was not needed, so not created


@pytest.mark.parametrize("shape, classes, head", [
    ((1, 84, 8400), 80, "v8"), ((1, 8400, 84), 80, "v8"), ((1, 25200, 85), 80, "v5"), ((1, 85, 25200), 80, "v5"),
    ((1, 84, 84), 80, None), ((1, 84, 85), 80, None), ((1, 86, 8400), 80, None), ((2, 84, 8400), 80, None),
    ((1, None, 84), 80, None), ((84, 8400), 80, None),
])
def test_yolo_head_matches_the_agent_reading_or_refuses(shape, classes, head):
    assert yolo_head(shape, classes) == head


def test_onnx_package_reader_agrees_with_onnxruntime(yolov8):
    from models.model_probe import _probe_onnx_package, _probe_onnx_runtime

    a, b = _probe_onnx_runtime(yolov8), _probe_onnx_package(yolov8)
    assert (a.inputs, a.outputs, a.props) == (b.inputs, b.outputs, b.props)


def test_the_importer_modules_load_no_runtime_until_a_model_is_read():
    import subprocess
    import sys

    code = ("import sys, models.importer, models.cli; "
            "print(','.join(m for m in ('onnx', 'onnxruntime', 'openvino', 'yaml', 'edge_agent') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
