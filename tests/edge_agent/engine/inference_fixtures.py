"""Small real models and model directories for the inference tests (built with onnx.helper, converted to
OpenVINO IR by OpenVINO itself). Import the fixtures you need into a test module."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.manifest import InputSpec, Manifest, OpenVinoFiles, OutputSpec, Runtimes

COLORS = ["red", "green", "blue"]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def color_classifier(path: Path, size: int = 32) -> Path:
    """RGB NCHW -> mean colour -> logits that favour the dominant channel: red, green or blue. A real model
    whose right answer a test can know."""
    w = numpy_helper.from_array((np.eye(3, dtype=np.float32) * 20.0), "w")
    b = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "color", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                             [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], [w, b])
    return _save(graph, path)


def conv_net(path: Path, size: int = 32, classes: int = 5, seed: int = 0) -> Path:
    """Two convolutions, ReLU, pooling and a dense layer with fixed random weights: enough arithmetic for two
    runtimes to be compared."""
    rng = np.random.default_rng(seed)
    init = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "c1"),
            numpy_helper.from_array(rng.normal(0, 0.3, (16, 8, 3, 3)).astype(np.float32), "c2"),
            numpy_helper.from_array(rng.normal(0, 0.3, (classes, 16)).astype(np.float32), "fc"),
            numpy_helper.from_array(rng.normal(0, 0.1, classes).astype(np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["image", "c1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "c2"], ["b"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["b"], ["br"]),
             helper.make_node("GlobalAveragePool", ["br"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], init)
    return _save(graph, path)


def to_openvino(onnx_path: Path) -> tuple[str, str]:
    import openvino as ov

    xml = onnx_path.with_suffix(".xml")
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    return xml.name, xml.with_suffix(".bin").name


def model_dir(directory: Path, kind: str = "color", runtimes: tuple[str, ...] = ("onnx", "openvino"),
              name: str | None = None) -> tuple[Path, Manifest]:
    """A directory laid out like an unpacked package: model files + manifest.json with their sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path = (color_classifier if kind == "color" else conv_net)(directory / "model.onnx")
    files = {"onnx": onnx_path.name}
    ov_files = None
    if "openvino" in runtimes:
        xml, bin_ = to_openvino(onnx_path)
        ov_files = OpenVinoFiles(xml=xml, bin=bin_)
    if "onnx" not in runtimes:
        onnx_path.unlink()
        files = {}
    labels = COLORS if kind == "color" else [f"class{i}" for i in range(5)]
    manifest = Manifest(
        name=name or f"{kind}-test", version="1.0.0", task="classification",
        input=InputSpec(shape=[1, 3, 32, 32], color_order="RGB", mean=[0.0], std=[1.0]),
        output=OutputSpec(decoding="logits"), labels=labels,
        runtimes=Runtimes(onnx=files.get("onnx"), openvino=ov_files),
        files={p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir() if p.is_file()},
    )
    (directory / "manifest.json").write_bytes(manifest.canonical_bytes())
    return directory, manifest


@pytest.fixture(scope="session")
def color_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    return model_dir(tmp_path_factory.mktemp("color-model"), "color")


@pytest.fixture(scope="session")
def conv_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    return model_dir(tmp_path_factory.mktemp("conv-model"), "conv")


@pytest.fixture(scope="session")
def onnx_only_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    return model_dir(tmp_path_factory.mktemp("onnx-only-model"), "conv", runtimes=("onnx",))


def signed_package(directory: Path, kind: str = "color") -> tuple[Path, Path, Path]:
    """(package, trusted public key PEM, the private key PEM) for a model of ``kind``, signed with a fresh key."""
    from models.package import pack
    from models.signing import generate_private_key, private_key_pem, public_key_pem

    src, manifest = model_dir(directory / "src", kind)
    key = generate_private_key()
    pub = directory / "model-signing.pub.pem"
    pub.write_text(public_key_pem(key))
    priv = directory / "model-signing.pem"
    priv.write_bytes(private_key_pem(key))
    files = {p.name: p for p in src.iterdir() if p.name != "manifest.json"}
    return pack(manifest, files, directory / "packages", key), pub, priv


@pytest.fixture(scope="session")
def color_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pkg, pub, _ = signed_package(tmp_path_factory.mktemp("color-package"))
    return pkg, pub
