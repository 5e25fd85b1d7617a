from __future__ import annotations

import pytest

from models.manifest import InputSpec, Manifest, OutputSpec, Runtimes


def manifest(decoding: str, labels: list[str], shape: list[int] | None = None, **output) -> Manifest:
    return Manifest(
        name="t", version="1", task="classification" if decoding in ("softmax", "logits") else "detection",
        input=InputSpec(shape=shape or [1, 3, 100, 100]), output=OutputSpec(decoding=decoding, **output),
        labels=labels, runtimes=Runtimes(onnx="model.onnx"),
    )


@pytest.fixture()
def make_manifest():
    return manifest
