"""`edgefleet train`, `edgefleet model quantize` and `edgefleet model bench`.

Exit codes (one place): 0 ok; 2 bad input (a missing folder, an unknown architecture, inconsistent options); 1 any
other failure. Progress goes to stderr, so `--json` leaves stdout to the summary alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgefleet.paths import default_state_dir, signing_key_path, signing_public_key_path

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _err(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}")


def _exit_code(exc: BaseException) -> int:
    """Map an exception to the CLI's exit code: the user's input is at fault (2) or something else failed (1)."""
    from pydantic import ValidationError

    from models.errors import PackageError
    from training.errors import ConfigError, DataError

    return EXIT_BAD_INPUT if isinstance(exc, (DataError, ConfigError, ValidationError, PackageError)) else EXIT_FAILURE


def _run(fn: Any) -> Any:
    try:
        return fn()
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns failures into exit codes
        code = _exit_code(exc)
        if code == EXIT_FAILURE:
            log.debug("failure", exc_info=True)
        _err(str(exc) if code == EXIT_BAD_INPUT else f"{type(exc).__name__}: {exc}")
        raise SystemExit(code) from None


def _check_data_arg(data: str) -> None:
    if data in ("digits", "synthetic") or data.startswith("synthetic:"):
        return
    if not Path(data).exists():
        _err(f"--data {data}: no such folder or CSV file (use digits, synthetic, a folder of class sub-folders, "
             f"or a CSV of path,label)")
        raise SystemExit(EXIT_BAD_INPUT)


def train_command(
    data: Annotated[str, typer.Option("--data", help="digits | synthetic[:N] | a folder of class sub-folders | a CSV "
                                                      "of path,label")],
    out: Annotated[Path, typer.Option("--out", help="output root; the run writes OUT/<name>-<version>/")],
    arch: Annotated[str, typer.Option(help="architecture: tiny_cnn (small inputs) or mobilenetv2 (camera frames)")]
    = "tiny_cnn",
    epochs: Annotated[Optional[int], typer.Option(help="maximum epochs (early stopping may stop sooner)")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    lr: Annotated[Optional[float], typer.Option(help="peak learning rate")] = None,
    cv: Annotated[int, typer.Option("--cv", help="k-fold cross-validation with K folds (0: skip)")] = 0,
    tune: Annotated[int, typer.Option("--tune", help="Optuna TPE trials before the final training (0: skip)")] = 0,
    study_storage: Annotated[Optional[str], typer.Option("--study-storage", help="Optuna storage URL, e.g. "
                                                                                 "postgresql://... to share a study")]
    = None,
    study_name: Annotated[Optional[str], typer.Option("--study-name")] = None,
    seed: Annotated[int, typer.Option(help="seed for split, training and calibration")] = 0,
    image_size: Annotated[Optional[int], typer.Option("--image-size", help="square input size (default: the "
                                                                           "architecture's or the data's)")] = None,
    name: Annotated[Optional[str], typer.Option(help="package name (default: from the data source)")] = None,
    version: Annotated[str, typer.Option(help="package version; INT8 gets VERSION-int8")] = "1.0.0",
    signing_key: Annotated[Optional[Path], typer.Option("--signing-key", help="Ed25519 private key PEM; created if "
                                                                              "missing (default: the state dir's)")]
    = None,
    int8_threshold: Annotated[float, typer.Option("--int8-threshold", help="largest INT8 accuracy drop in points "
                                                                           "that is still deployable")] = 1.0,
    calibration_size: Annotated[int, typer.Option("--calibration-size", help="training images used to calibrate "
                                                                             "INT8")] = 300,
    drop_mislabeled: Annotated[bool, typer.Option("--drop-mislabeled", help="drop likely mislabelled images instead "
                                                                            "of only reporting them")] = False,
    registry: Annotated[Optional[Path], typer.Option("--registry", help="also add both packages to this local "
                                                                        "registry directory")] = None,
    bench_runs: Annotated[int, typer.Option("--bench-runs", help="timed runs per runtime configuration")] = 100,
    threads: Annotated[int, typer.Option(help="inference threads for the latency benchmark")] = 2,
    train_threads: Annotated[Optional[int], typer.Option("--train-threads", help="torch threads for training "
                                                                                 "(default: chosen from the input "
                                                                                 "size)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the run summary as JSON on stdout")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Train, assess, export, quantize, benchmark and package a model: two signed .efpkg files and a model card."""
    from training.pipeline import TrainingOptions, run_training

    _check_data_arg(data)

    def go() -> Any:
        opts = TrainingOptions(
            data=data, out=out, arch=arch, epochs=epochs, batch_size=batch_size, lr=lr, cv=cv, tune=tune,
            study_storage=study_storage, study_name=study_name, seed=seed, image_size=image_size, name=name,
            version=version, signing_key=signing_key or signing_key_path(default_state_dir()),
            int8_threshold=int8_threshold, calibration_size=calibration_size, drop_mislabeled=drop_mislabeled,
            registry=registry, bench_runs=bench_runs, threads=threads, train_threads=train_threads,
            progress=not quiet)
        return run_training(opts)

    with contextlib.redirect_stdout(sys.stderr):  # every progress bar to stderr: stdout is for --json alone
        outcome = _run(go)
    if as_json:
        sys.stdout.write(json.dumps(outcome.summary, indent=2, default=str) + "\n")


def quantize_command(
    model: Annotated[Path, typer.Argument(help="FP32 .onnx model (input: NCHW float32)")],
    calib: Annotated[str, typer.Option("--calib", help="calibration images: digits | synthetic | folder | CSV; use "
                                                        "the model's training data")],
    out: Annotated[Path, typer.Option("--out", help="output folder for the INT8 models")],
    test: Annotated[Optional[str], typer.Option("--test", help="labelled data to measure the accuracy delta on")]
    = None,
    calibration_size: Annotated[int, typer.Option("--calibration-size")] = 300,
    threshold: Annotated[float, typer.Option(help="largest accuracy drop in points that is still deployable")] = 1.0,
    openvino: Annotated[bool, typer.Option("--openvino/--no-openvino", help="also NNCF-quantize an OpenVINO IR")]
    = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """INT8-quantize an ONNX model: onnxruntime static QDQ u8s8 (and OpenVINO NNCF), calibrated on --calib images.
    The input normalisation is derived from --calib the way `edgefleet train` derives it from its training split."""

    def go() -> dict[str, Any]:
        import numpy as np
        import onnx

        from training.data import load_dataset
        from training.errors import DataError
        from training.export import export_openvino
        from training.preprocess import input_spec_for, to_tensor
        from training.quantize import quantize_onnx, quantize_openvino

        if not model.is_file():
            raise DataError(f"{model}: no such ONNX file")
        dims = [d.dim_value for d in onnx.load(str(model), load_external_data=False).graph.input[0].type
                .tensor_type.shape.dim]
        ds, _ = load_dataset(calib, image_size=dims[2] or None)
        spec = input_spec_for(ds, dims[2] or None)
        x = to_tensor(ds.images[np.random.default_rng(0).permutation(len(ds))[:calibration_size]], spec)
        if test is not None:
            tds, _ = load_dataset(test, image_size=dims[2] or None)
            tx, ty, names = to_tensor(tds.images, spec), tds.labels, tds.class_names
        else:
            tx, ty, names = x, np.zeros(len(x), np.int64), list(ds.class_names)
        out.mkdir(parents=True, exist_ok=True)
        results = [quantize_onnx(model, out / f"{model.stem}-int8.onnx", x, tx, ty, names, threshold=threshold,
                                 calibration_size=calibration_size)]
        if openvino:
            xml, _ = export_openvino(model, out, sample=x[:4])
            results.append(quantize_openvino(xml, out, x, tx, ty, names, threshold=threshold,
                                             subset_size=calibration_size))
        report = {r.runtime: r.to_dict() for r in results}
        if test is None:
            for r in report.values():
                for k in ("fp32_accuracy", "int8_accuracy", "delta", "deployable"):
                    r[k] = None  # no labelled test data: no accuracy claim
        return report

    with contextlib.redirect_stdout(sys.stderr):
        report = _run(go)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for runtime, r in report.items():
            typer.echo(f"{runtime}: {r['model_path']}  ({r['method']}, {r['calibration_samples']} calibration images"
                       + (f", accuracy {r['fp32_accuracy']:.2f}% -> {r['int8_accuracy']:.2f}%, delta "
                          f"{r['delta']:+.2f} points, deployable {r['deployable']})" if r["delta"] is not None
                          else ")"))


def bench_command(
    package: Annotated[Path, typer.Argument(help="a .efpkg model package")],
    runs: Annotated[int, typer.Option(help="timed runs per configuration")] = 100,
    threads: Annotated[int, typer.Option(help="inference threads")] = 2,
    key: Annotated[Optional[Path], typer.Option("--key", help="trusted public key PEM (default: the fleet's)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify a package, then time batch-1 inference on this machine in every runtime it ships (interleaved)."""

    def go() -> dict[str, Any]:
        from models.package import unpack
        from training.benchmark import BenchConfig, bench_interleaved
        from training.errors import DataError

        if not package.is_file():
            raise DataError(f"{package}: no such package file")
        key_path = key or signing_public_key_path(default_state_dir())
        if not key_path.is_file():
            raise DataError(f"no public key at {key_path}: pass --key PUBKEY_PEM")
        with tempfile.TemporaryDirectory() as tmp:
            manifest = unpack(package, Path(tmp) / "pkg", key_path)
            root = Path(tmp) / "pkg"
            configs = []
            if manifest.runtimes.onnx:
                configs.append(BenchConfig("onnxruntime", root / manifest.runtimes.onnx, "onnxruntime"))
            if manifest.runtimes.openvino:
                xml = root / manifest.runtimes.openvino.xml
                configs.append(BenchConfig("openvino", xml, "openvino"))
                if manifest.precision == "fp32":
                    configs.append(BenchConfig("openvino_f32", xml, "openvino", "f32"))
            rounds = 5
            stats = bench_interleaved(configs, manifest.input, rounds=rounds, runs_per_round=max(1, runs // rounds),
                                      threads=threads)
        return {"package": package.name, "precision": manifest.precision, "threads": threads, "latency": stats,
                "build_machine": manifest.benchmark}

    report = _run(go)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['package']} ({report['precision']}, batch 1, {threads} threads)")
    for col in ("runtime", "median ms", "p90 ms", "runs", "build machine median ms"):
        table.add_column(col)
    for name, s in report["latency"].items():
        built = report["build_machine"].get(name, {})
        table.add_row(name, f"{s['median_ms']:.3f}", f"{s['p90_ms']:.3f}", str(s["runs"]),
                      f"{built['median_ms']:.3f}" if isinstance(built, dict) and "median_ms" in built else "-")
    Console().print(table)
