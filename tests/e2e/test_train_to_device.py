"""From labelled images to a camera: a model trained by `edgefleet train` and run by `edgefleet agent infer`
on a video of real handwritten digits gives the right answers on both runtimes. This is the parity check
between training's preprocessing and the device's (colour order, resize, scale, mean/std, layout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_digits

FRAMES = 120


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("train")
    key = out / "keys" / "model-signing.pem"
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet", "train", "--data", "digits", "--epochs", "12", "--out", str(out),
         "--signing-key", str(key), "--bench-runs", "5", "--calibration-size", "100", "--quiet", "--json"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, EDGEFLEET_STATE_DIR=str(out / "home")),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    packages = sorted(out.glob("*/*-int8.efpkg"))
    assert len(packages) == 1
    return packages[0], key.with_name("model-signing.pub.pem")


@pytest.fixture(scope="module")
def digits_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The last FRAMES digits, 8x8 scaled to 64x64 grey frames, as a camera would deliver them (BGR, mp4v)."""
    digits = load_digits()
    images, labels = digits.images[-FRAMES:], digits.target[-FRAMES:]
    path = tmp_path_factory.mktemp("video") / "digits.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 64))
    for image in images:
        grey = np.clip(image * 255.0 / 16.0, 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(cv2.resize(grey, (64, 64), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path, labels


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_trained_int8_package_reads_real_digits_from_a_video(trained, digits_video, backend) -> None:
    package, public_key = trained
    video, labels = digits_video
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet", "agent", "infer", "--model", str(package), "--source", str(video),
         "--key", str(public_key), "--backend", backend, "--json", "--top-k", "1"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [r["frame_index"] for r in lines] == list(range(FRAMES))  # a file is read whole, nothing dropped
    predicted = np.array([int(r["results"][0]["label"]) for r in lines])
    accuracy = float((predicted == labels).mean())
    assert accuracy >= 0.95, f"{backend}: {accuracy:.3f} on real digits through the device path"
