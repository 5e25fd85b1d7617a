"""A small real model for the demo when the training extra is not installed.

Built with OpenVINO's own graph API (the agent extra has it; onnx and torch belong to training): per-channel
means of a 32x32 RGB frame through a fixed linear layer and a softmax over four colour-ish labels. It runs
through the same package, signature, slot and inference path as a trained model, which is what the demo shows;
its answers mean little."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

LABELS = ["red", "green", "blue", "grey"]


def build_demo_package(out_dir: Path, signing_key: Path, *, name: str = "demo-colours", version: str = "1.0.0",
                       labels: list[str] | None = None) -> Path:
    """The demo model. ``labels`` other than its four makes a package that loads and runs but whose outputs do not
    fit its labels: what the demo rolls out to show a canary failing its health check and rolling back."""
    import openvino as ov
    import openvino.opset13 as ops

    from models.manifest import InputSpec, Manifest, OpenVinoFiles, OutputSpec, Runtimes
    from models.package import pack
    from models.signing import load_or_create_private_key

    image = ops.parameter([1, 3, 32, 32], np.float32, name="input")
    means = ops.reduce_mean(image, np.array([2, 3]), keep_dims=False)
    weights = np.array([[4, -2, -2, 0], [-2, 4, -2, 0], [-2, -2, 4, 0]], dtype=np.float32)
    logits = ops.add(ops.matmul(means, ops.constant(weights), False, False),
                     ops.constant(np.array([[0, 0, 0, 0.5]], dtype=np.float32)))
    model = ov.Model([ops.softmax(logits, 1)], [image], "demo-colours")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, xml, compress_to_fp16=False)
        manifest = Manifest(
            name=name, version=version, task="classification",
            input=InputSpec(shape=[1, 3, 32, 32], color_order="RGB", mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0]),
            output=OutputSpec(decoding="softmax"), labels=labels or LABELS,
            runtimes=Runtimes(openvino=OpenVinoFiles(xml="model.xml", bin="model.bin")),
            flags=["demo model built without training: not assessed"],
        )
        return pack(manifest, {"model.xml": xml, "model.bin": xml.with_suffix(".bin")}, out_dir,
                    load_or_create_private_key(signing_key))
