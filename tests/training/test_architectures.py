from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.architectures import (ARCHITECTURES, build_model, count_parameters, default_image_size,
                                    register_arch)
from training.errors import ConfigError

SMALL = {
    "tiny_cnn": [(1, 8, {}), (3, 32, {"width": 8})],
    "mobilenetv2": [(3, 32, {"width_mult": 0.25}), (1, 16, {"width_mult": 0.25})],
}


def test_every_registered_architecture_has_a_small_test_case() -> None:
    assert set(ARCHITECTURES) <= set(SMALL)


@pytest.mark.parametrize(("name", "channels", "size", "kw"),
                         [(n, c, s, kw) for n, cases in SMALL.items() for c, s, kw in cases])
def test_output_shape_is_batch_by_classes(name: str, channels: int, size: int, kw: dict) -> None:
    model = build_model(name, 7, channels, size, **kw).eval()
    with torch.no_grad():
        assert model(torch.zeros(3, channels, size, size)).shape == (3, 7)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_exports_to_onnx_and_onnxruntime_agrees(name: str, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    channels, size, kw = SMALL[name][0]
    torch.manual_seed(0)
    model = build_model(name, 5, channels, size, **kw).eval()
    x = torch.randn(2, channels, size, size)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert np.allclose(out, model(x).numpy(), atol=1e-4)


def test_mobilenetv2_at_full_width_has_about_3_5_million_parameters() -> None:
    assert 3.3e6 < count_parameters(build_model("mobilenetv2", 1000, 3, 224)) < 3.7e6
    assert default_image_size("mobilenetv2") == 224


def test_unknown_architecture_and_bad_shapes_are_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown architecture"):
        build_model("resnet9000", 10, 3, 32)
    with pytest.raises(ConfigError):
        build_model("tiny_cnn", 1, 3, 32)
    with pytest.raises(ConfigError):
        register_arch("tiny_cnn")(lambda *a, **k: None)
