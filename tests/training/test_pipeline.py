"""The whole workflow in-process on tiny data: every step's output lands in OUT/<name>-<version>/, both packages
verify, and bad input leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.package import verify
from models.registry import LocalRegistry
from training.errors import ConfigError, DataError
from tests.training.export_fixtures import CliRun, digits_run  # noqa: F401 - fixture
from training.pipeline import TrainingOptions, default_name, run_training


@pytest.fixture(scope="module")
def outcome(digits_run: CliRun) -> CliRun:
    """The pipeline's output from one real run (``--data digits --epochs 1 --cv 2 --registry``)."""
    return digits_run


@pytest.mark.slow
def test_run_dir_holds_reports_plots_models_packages_card_and_summary(outcome: CliRun) -> None:
    run_dir = outcome.tmp / "out" / "digits-0.1.0"
    assert outcome.summary["run_dir"] == str(run_dir)
    for rel in ("cleaning_report.md", "cleaning_report.json", "model_card.md", "summary.json",
                "plots/confusion_matrix.png", "plots/roc_curves.png", "plots/training_curves.png",
                "model/digits.onnx", "model/digits.xml", "model/digits.bin", "model/digits-int8.onnx",
                "model/digits-int8.xml", "model/digits-int8.bin", "digits-0.1.0.efpkg", "digits-0.1.0-int8.efpkg"):
        assert (run_dir / rel).is_file(), rel


@pytest.mark.slow
def test_manifests_record_training_settings_split_cleaning_and_cv(outcome: CliRun) -> None:
    from models.signing import load_private_key

    public = load_private_key(outcome.signing_key).public_key()
    fp32 = verify(Path(outcome.summary["packages"]["fp32"]), public)
    int8 = verify(Path(outcome.summary["packages"]["int8"]), public)
    assert fp32.metrics["accuracy"] == outcome.summary["test_accuracy"]
    assert int8.quantization is not None and int8.quantization.threshold == 1.0
    assert int8.quantization.calibration_samples == 64
    assert fp32.training["cross_validation"]["k"] == 2 and fp32.training["split_ratios"] == [0.7, 0.15, 0.15]
    assert fp32.training["cleaning"]["in"] == 1797 and fp32.training["hyperparameters"]["epochs"] == 1
    assert fp32.training["tuning"]["trials_run"] == 2
    assert fp32.input.height == 8 and fp32.labels == [str(i) for i in range(10)]
    assert fp32.output.decoding == "logits"  # tiny_cnn ends in a Linear layer


@pytest.mark.slow
def test_summary_json_matches_the_outcome_and_names_every_step(outcome: CliRun) -> None:
    on_disk = json.loads((Path(outcome.summary["run_dir"]) / "summary.json").read_text())
    assert on_disk == outcome.summary
    assert set(on_disk["quantization"]) == {"onnxruntime", "openvino"}
    assert set(on_disk["steps_seconds"]) >= {"load", "clean", "split", "train", "assess", "cv", "export_onnx",
                                             "export_openvino", "quantize", "benchmark", "package"}
    assert len(on_disk["cross_validation"]["fold_accuracies"]) == 2
    assert set(on_disk["benchmark"]["fp32"]) == {"host", "onnxruntime", "openvino", "openvino_f32"}
    assert "Training tiny_cnn" in outcome.stderr  # progress went to stderr, stdout held only the JSON


@pytest.mark.slow
def test_tuning_trials_are_logged_stored_in_the_study_and_the_best_retrained(outcome: CliRun) -> None:
    import optuna

    tuning = outcome.summary["tuning"]
    run_dir = Path(outcome.summary["run_dir"])
    logged = json.loads((run_dir / "tuning" / "trials.json").read_text())
    study = optuna.load_study(study_name="digits-bench", storage=f"sqlite:///{outcome.tmp / 'study.db'}")
    assert tuning["trials_run"] == 2 and len(study.trials) == len(logged["trials"]) == 2
    assert tuning["best_params"] == study.best_params
    assert outcome.summary["training"]["arch"] == "tiny_cnn"
    from models.package import read_manifest

    trained_with = read_manifest(Path(outcome.summary["packages"]["fp32"])).training["hyperparameters"]
    assert trained_with["lr"] == pytest.approx(study.best_params["lr"])
    assert trained_with["optimizer"] == study.best_params["optimizer"]


@pytest.mark.slow
def test_both_packages_are_added_to_the_registry(outcome: CliRun) -> None:
    versions = sorted(e.version for e in LocalRegistry(outcome.registry).list("digits"))
    assert versions == ["0.1.0", "0.1.0-int8"]


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
