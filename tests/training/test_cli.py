"""`edgefleet train` end to end through the real command, from the built-in digits and from a folder of JPEGs;
`model bench` and `model quantize` on what it produced; bad input exits 2 with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import typer
from typer.testing import CliRunner

from models.package import verify
from models.signing import load_private_key
from tests.training.export_fixtures import CliRun, digits_run  # noqa: F401 - fixture
from tests.training.export_fixtures import run_train_cli as _train
from training.cli import bench_command, quantize_command
from training.synthetic import SHAPES, make_shapes

def _app(fn) -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command()(fn)
    return app


@pytest.mark.slow
def test_train_on_digits_produces_verified_signed_packages(digits_run: CliRun) -> None:
    tmp, summary = digits_run.tmp, digits_run.summary
    public = load_private_key(digits_run.signing_key).public_key()
    fp32 = verify(Path(summary["packages"]["fp32"]), public)
    int8 = verify(Path(summary["packages"]["int8"]), public)
    assert (fp32.name, fp32.version, int8.version) == ("digits", "0.1.0", "0.1.0-int8")
    assert int8.quantization is not None and int8.deployable == (-int8.quantization.accuracy_delta <= 1.0)
    assert fp32.metrics["accuracy"] == summary["test_accuracy"] and 0.0 < summary["test_accuracy"] <= 1.0
    assert Path(summary["model_card"]).read_text().count("## ") >= 6
    assert not (tmp / "state").exists()  # --signing-key given: the default state dir is left alone


@pytest.mark.slow
def test_train_from_a_folder_of_jpegs(tmp_path: Path) -> None:
    images, labels = make_shapes(60, image_size=24, seed=3)
    for i, (img, label) in enumerate(zip(images, labels)):
        if label >= 3:
            continue
        folder = tmp_path / "photos" / SHAPES[label]
        folder.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(folder / f"img{i:03d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    proc = _train(tmp_path, "--data", str(tmp_path / "photos"), "--epochs", "1", "--name", "shapes")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    public = load_private_key(tmp_path / "keys" / "sign.pem").public_key()
    manifest = verify(Path(summary["packages"]["int8"]), public)
    assert manifest.labels == sorted(["circle", "square", "triangle"]) or set(manifest.labels) == {
        "circle", "square", "triangle"}
    assert manifest.input.channels == 3 and manifest.input.color_order == "RGB"


def test_a_missing_data_folder_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    proc = _train(tmp_path, "--data", str(tmp_path / "no-such-folder"))
    assert proc.returncode == 2
    assert "no-such-folder" in proc.stderr and "no such folder" in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "out").exists() and not (tmp_path / "keys").exists()


def test_an_unknown_architecture_exits_2(tmp_path: Path) -> None:
    proc = _train(tmp_path, "--data", "synthetic:50", "--arch", "resnet9000", "--epochs", "1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "resnet9000" in proc.stderr


@pytest.mark.slow
def test_model_bench_times_every_runtime_of_a_verified_package(digits_run: CliRun) -> None:
    summary = digits_run.summary
    pub = digits_run.signing_key.with_name("sign.pub.pem")
    result = CliRunner().invoke(_app(bench_command), [summary["packages"]["fp32"], "--runs", "5", "--threads", "1",
                                                      "--key", str(pub), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["latency"]) == {"onnxruntime", "openvino", "openvino_f32"}
    assert all(s["runs"] == 5 for s in report["latency"].values())


def test_model_bench_refuses_a_package_signed_by_another_key(digits_run: CliRun, tmp_path: Path) -> None:
    summary = digits_run.summary
    from models.signing import load_or_create_private_key

    load_or_create_private_key(tmp_path / "other.pem")
    result = CliRunner().invoke(_app(bench_command), [summary["packages"]["int8"], "--key",
                                                      str(tmp_path / "other.pub.pem")])
    assert result.exit_code == 2


@pytest.mark.slow
def test_model_quantize_writes_int8_models_and_measures_their_accuracy(digits_run: CliRun, tmp_path: Path) -> None:
    summary = digits_run.summary
    onnx_path = Path(summary["run_dir"]) / "model" / "digits.onnx"
    result = CliRunner().invoke(_app(quantize_command), [str(onnx_path), "--calib", "digits", "--test", "digits",
                                                         "--out", str(tmp_path / "q"), "--calibration-size", "64",
                                                         "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert (tmp_path / "q" / "digits-int8.onnx").is_file() and (tmp_path / "q" / "digits-int8.xml").is_file()
    for runtime in ("onnxruntime", "openvino"):
        assert 0 < report[runtime]["int8_accuracy"] <= 100
        assert report[runtime]["deployable"] == (-report[runtime]["delta"] <= 1.0)
