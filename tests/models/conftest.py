"""Real tiny packages: an ONNX model built with onnx.helper, fake-but-real-bytes OpenVINO files, a model card,
signed with real Ed25519 keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.manifest import InputSpec, Manifest, OpenVinoFiles, Runtimes
from models.package import pack
from models.signing import generate_private_key

LABELS = [str(i) for i in range(10)]


def tiny_onnx_bytes() -> bytes:
    """A real ONNX classifier: flatten an 1x1x8x8 image and multiply by a 64x10 weight matrix."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.linspace(-1, 1, 640, dtype=np.float32).reshape(64, 10), "W")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return generate_private_key()


@pytest.fixture(scope="session")
def other_key() -> Ed25519PrivateKey:
    return generate_private_key()


@pytest.fixture()
def payload(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    src.mkdir()
    contents = {"model.onnx": tiny_onnx_bytes(), "model.xml": b"<?xml version='1.0'?><net name='tiny'/>\n",
                "model.bin": bytes(range(256)) * 4, "model_card.md": b"# tiny\n\nA test model.\n"}
    for name, data in contents.items():
        (src / name).write_bytes(data)
    return {name: src / name for name in contents}


@pytest.fixture()
def make_manifest() -> Callable[..., Manifest]:
    def _make(**overrides) -> Manifest:
        fields = dict(name="digits", version="1.0.0", task="classification", input=InputSpec(shape=[1, 1, 8, 8]),
                      labels=LABELS, runtimes=Runtimes(onnx="model.onnx",
                                                       openvino=OpenVinoFiles(xml="model.xml", bin="model.bin")),
                      metrics={"accuracy": 0.97})
        fields.update(overrides)
        return Manifest(**fields)

    return _make


@pytest.fixture()
def package(tmp_path: Path, payload: dict[str, Path], make_manifest, signing_key: Ed25519PrivateKey) -> Path:
    return pack(make_manifest(), payload, tmp_path / "out", signing_key)


@pytest.fixture()
def public_pem(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Path:
    from models.signing import public_key_pem

    path = tmp_path / "fleet.pub.pem"
    path.write_text(public_key_pem(signing_key))
    return path
