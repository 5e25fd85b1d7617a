"""The whole workflow in-process on tiny data: every step's output lands in OUT/<name>-<version>/, both packages
verify, and bad input leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.package import verify
from models.registry import LocalRegistry
from training.errors import ConfigError, DataError
from training.pipeline import TrainingOptions, default_name, run_training


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pipeline")
    opts = TrainingOptions(data="synthetic:150", out=root / "out", signing_key=root / "keys" / "sign.pem",
                           image_size=16, epochs=2, cv=2, registry=root / "registry", bench_runs=5,
                           calibration_size=32, name="shapes", version="0.0.1", progress=False)
    return run_training(opts), opts


def test_run_dir_holds_reports_plots_models_packages_card_and_summary(outcome) -> None:
    result, opts = outcome
    run_dir = Path(opts.out) / "shapes-0.0.1"
    assert result.run_dir == run_dir
    for rel in ("cleaning_report.md", "cleaning_report.json", "model_card.md", "summary.json",
                "plots/confusion_matrix.png", "plots/roc_curves.png", "plots/training_curves.png",
                "model/shapes.onnx", "model/shapes.xml", "model/shapes.bin", "model/shapes-int8.onnx",
                "model/shapes-int8.xml", "model/shapes-int8.bin", "shapes-0.0.1.efpkg", "shapes-0.0.1-int8.efpkg"):
        assert (run_dir / rel).is_file(), rel


def test_packages_verify_with_the_signing_keys_public_half(outcome) -> None:
    result, opts = outcome
    from models.signing import load_private_key

    public = load_private_key(opts.signing_key).public_key()
    fp32, int8 = verify(result.fp32_package, public), verify(result.int8_package, public)
    assert fp32.metrics["accuracy"] == result.summary["test_accuracy"]
    assert int8.quantization is not None and int8.quantization.threshold == opts.int8_threshold
    assert fp32.training["cross_validation"]["k"] == 2 and fp32.training["split_ratios"] == [0.7, 0.15, 0.15]
    assert fp32.training["cleaning"]["in"] == 150
    assert fp32.input.height == 16 and fp32.labels == ["circle", "square", "triangle", "cross", "ring"]


def test_summary_json_matches_the_outcome_and_names_every_step(outcome) -> None:
    result, _ = outcome
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["packages"]["int8"] == str(result.int8_package)
    assert set(summary["quantization"]) == {"onnxruntime", "openvino"}
    assert set(summary["steps_seconds"]) >= {"load", "clean", "split", "train", "assess", "cv", "export_onnx",
                                             "export_openvino", "quantize", "benchmark", "package"}
    assert len(summary["cross_validation"]["fold_accuracies"]) == 2
    assert set(summary["benchmark"]["fp32"]) == {"host", "onnxruntime", "openvino", "openvino_f32"}


def test_both_packages_are_added_to_the_registry(outcome) -> None:
    _, opts = outcome
    versions = sorted(e.version for e in LocalRegistry(opts.registry).list("shapes"))
    assert versions == ["0.0.1", "0.0.1-int8"]


def test_a_missing_data_folder_raises_data_error_and_writes_nothing(tmp_path: Path) -> None:
    opts = TrainingOptions(data=str(tmp_path / "nope"), out=tmp_path / "out", signing_key=tmp_path / "k.pem",
                           progress=False)
    with pytest.raises(DataError, match="no such data source"):
        run_training(opts)
    assert not (tmp_path / "out").exists() and not (tmp_path / "k.pem").exists()


def test_inconsistent_options_are_refused_before_any_work(tmp_path: Path) -> None:
    bad = TrainingOptions(data="digits", out=tmp_path / "o", signing_key=tmp_path / "k.pem", ratios=(0.5, 0.2, 0.2))
    with pytest.raises(ConfigError, match="sum to 1"):
        run_training(bad)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("data,name", [("digits", "digits"), ("synthetic:300", "synthetic"),
                                       ("/x/My Photos", "My-Photos"), ("/x/labels.csv", "labels")])
def test_default_package_name_comes_from_the_data_source(data: str, name: str) -> None:
    assert default_name(data) == name
