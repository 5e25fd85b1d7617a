"""Session fixtures for the export -> quantize -> benchmark -> package tests: one small MobileNetV2-style model
(width 0.35, 500 real digits at 32x32), trained for a few seconds, exported once and quantized once.

Import the fixtures you use into a test module (``from tests.training.export_fixtures import exported``). Each
importing module registers its own copy of a fixture, so the work itself is cached here, once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.manifest import InputSpec


_ONCE: dict[str, Any] = {}


def _once(key: str, make: Callable[[], Any]) -> Any:
    if key not in _ONCE:
        _ONCE[key] = make()
    return _ONCE[key]


@dataclass
class Trained:
    model: object
    spec: InputSpec
    class_names: list[str]
    calib: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_fingerprint: str


@dataclass
class Exported:
    trained: Trained
    onnx: Path
    xml: Path
    bin: Path


@dataclass
class Quantized:
    exported: Exported
    ort: object  # QuantizationResult
    ov: object


@pytest.fixture(scope="session")
def trained() -> Trained:
    return _once("trained", _train)


def _train() -> Trained:
    from training.data import load_dataset
    from training.preprocess import input_spec_for, to_tensor
    from training.split import split
    from training.train import TrainConfig, fit

    ds, _ = load_dataset("digits", image_size=32, seed=0)
    parts = split(ds.subset(range(500)), ratios=(0.6, 0.1, 0.3), seed=0)
    spec = input_spec_for(parts.train, 32)
    cfg = TrainConfig(arch="mobilenetv2", arch_params={"width_mult": 0.35, "last_channels": 128}, epochs=3, lr=1e-2,
                      batch_size=32, seed=0, augment=False)
    result = fit(cfg, parts.train, parts.val, spec, progress=False)
    return Trained(result.model, spec, list(ds.class_names), to_tensor(parts.train.images[:64], spec),
                   to_tensor(parts.test.images, spec), parts.test.labels, parts.train.fingerprint())


@pytest.fixture(scope="session")
def exported(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _once("exported", lambda: _export(trained, tmp_path_factory))


def _export(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    from training.export import export_onnx, export_openvino

    out = tmp_path_factory.mktemp("exported")
    onnx_path = export_onnx(trained.model, trained.spec, out / "digits.onnx", sample=trained.test_x)
    xml, binf = export_openvino(onnx_path, out, sample=trained.test_x)
    return Exported(trained, onnx_path, xml, binf)


@pytest.fixture(scope="session")
def quantized(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Quantized:
    return _once("quantized", lambda: _quantize(exported, tmp_path_factory))


def _quantize(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Quantized:
    from training.quantize import quantize_onnx, quantize_openvino

    t = exported.trained
    out = tmp_path_factory.mktemp("quantized")
    ort = quantize_onnx(exported.onnx, out / "digits-int8.onnx", t.calib, t.test_x, t.test_y, t.class_names,
                        decoding="logits", calibration_size=64)
    ov = quantize_openvino(exported.xml, out, t.calib, t.test_x, t.test_y, t.class_names, decoding="logits",
                           subset_size=64)
    return Quantized(exported, ort, ov)


@dataclass
class CliRun:
    """One real ``edgefleet train --data digits --epochs 1 --cv 2 --tune 2 --registry ...`` run, shared by the
    pipeline and CLI tests (the slowest thing in this folder, so it runs once per session)."""

    tmp: Path
    summary: dict[str, Any]
    signing_key: Path
    registry: Path
    stderr: str


ROOT = Path(__file__).resolve().parents[2]
EDGEFLEET = Path(sys.executable).parent / "edgefleet"


def run_train_cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``edgefleet train`` as a user runs it, with a private state dir and signing key under ``tmp``."""
    env = dict(os.environ, EDGEFLEET_STATE_DIR=str(tmp / "state"))
    cmd = [str(EDGEFLEET), "train", "--out", str(tmp / "out"), "--signing-key", str(tmp / "keys" / "sign.pem"),
           "--bench-runs", "5", "--calibration-size", "64", "--json", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    def make() -> CliRun:
        tmp = tmp_path_factory.mktemp("cli-digits")
        proc = run_train_cli(tmp, "--data", "digits", "--epochs", "1", "--version", "0.1.0", "--cv", "2",
                             "--registry", str(tmp / "registry"), "--tune", "2", "--study-storage",
                             f"sqlite:///{tmp / 'study.db'}", "--study-name", "digits-bench")
        assert proc.returncode == 0, proc.stderr[-3000:]
        return CliRun(tmp, json.loads(proc.stdout), tmp / "keys" / "sign.pem", tmp / "registry", proc.stderr)

    return _once("digits_run", make)
