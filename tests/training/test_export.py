"""ONNX and OpenVINO export: self-contained files that compute what the torch model computes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from models.manifest import InputSpec
from tests.training.export_fixtures import Exported, exported, trained  # noqa: F401 - fixtures
from training.export import ExportError, export_onnx, export_openvino, run_onnx, run_openvino


def test_onnx_export_passes_the_checker_and_embeds_its_weights(exported: Exported) -> None:
    onnx.checker.check_model(str(exported.onnx), full_check=True)
    model = onnx.load(str(exported.onnx))
    assert not list(exported.onnx.parent.glob("*.onnx.data"))
    assert all(init.data_location != onnx.TensorProto.EXTERNAL for init in model.graph.initializer)
    assert model.graph.input[0].name == "input"


def test_onnxruntime_matches_torch_on_real_images(exported: Exported) -> None:
    t = exported.trained
    with torch.no_grad():
        expected = t.model(torch.from_numpy(t.test_x)).numpy()
    got = run_onnx(exported.onnx, t.test_x)
    assert got.shape == expected.shape == (len(t.test_x), len(t.class_names))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_openvino_ir_keeps_fp32_weights_and_matches_onnxruntime(exported: Exported) -> None:
    t = exported.trained
    x = t.test_x[:16]
    np.testing.assert_allclose(run_openvino(exported.xml, x, "f32"), run_onnx(exported.onnx, x), atol=1e-4)
    # FP32 weights: the .bin is about as large as the ONNX file, not half of it (FP16 compression is off)
    assert exported.bin.stat().st_size > 0.8 * exported.onnx.stat().st_size


def test_openvino_ir_has_batch_one_for_camera_pipelines(exported: Exported) -> None:
    import openvino as ov

    shape = ov.Core().read_model(str(exported.xml)).input(0).get_partial_shape()
    assert shape.is_static and list(shape.to_shape()) == exported.trained.spec.shape


class _Drifting(torch.nn.Module):
    """Computes something in torch that its ONNX export does not reproduce (a Python-side random term)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.from_numpy(np.random.default_rng().standard_normal((1, 2)).astype(np.float32))
        return self.fc(x.flatten(1)) + noise  # traced as a constant, so torch and onnxruntime disagree


def test_an_export_that_changes_the_outputs_is_refused(tmp_path) -> None:
    spec = InputSpec(shape=[1, 1, 4, 4])
    with pytest.raises(ExportError, match="differ from torch"):
        export_onnx(_Drifting(), spec, tmp_path / "drift.onnx")


def test_check_inputs_of_the_wrong_shape_are_refused(tmp_path, exported: Exported) -> None:
    wrong = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(ExportError, match="shape"):
        export_onnx(exported.trained.model, exported.trained.spec, tmp_path / "m.onnx", sample=wrong)


def test_openvino_export_of_a_broken_onnx_file_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="OpenVINO could not convert bad.onnx"):
        export_openvino(bad, tmp_path / "ov")
