"""The shipping half of a training run: export ONNX -> export OpenVINO -> quantize (onnxruntime and NNCF) ->
benchmark -> package (FP32 + INT8, signed) + model card + registry -> summary.json.

Like ``training.stages``, each step announces itself on the run's progress log and returns what later steps read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.stages import Findings, Run

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from models.manifest import InputSpec, Manifest
    from training.package import ModelFiles
    from training.quantize import QuantizationResult
    from training.split import Split


@dataclass
class HeldOut:
    """The arrays the exports are checked and quantized with: calibration images drawn from *train* (never test),
    the preprocessed test set, and how the model's outputs decode."""

    calib: np.ndarray
    x: np.ndarray
    y: np.ndarray
    decoding: str


@dataclass
class Quantized:
    """The INT8 variants, one per runtime."""

    ort: QuantizationResult
    ov: QuantizationResult

    @property
    def results(self) -> list[QuantizationResult]:
        return [self.ort, self.ov]

    @property
    def files(self) -> ModelFiles:
        from training.package import ModelFiles

        return ModelFiles(self.ort.model_path, self.ov.model_path, self.ov.model_path.with_suffix(".bin"))


@dataclass
class Packaged:
    fp32: Path
    int8: Path
    fp32_manifest: Manifest
    int8_manifest: Manifest
    card: Path
    data_info: dict[str, Any]
    registered: list[str]


def decoding_of(model: Any, x: np.ndarray) -> str:
    """``softmax`` when the model already outputs probabilities (rows non-negative, summing to 1), else ``logits``."""
    import torch

    with torch.no_grad():
        y = model(torch.from_numpy(x[:8])).numpy()
    return "softmax" if (y >= 0).all() and np.allclose(y.sum(axis=1), 1.0, atol=1e-4) else "logits"


def held_out(run: Run, parts: Split, spec: InputSpec, model: Any) -> HeldOut:
    from training.preprocess import to_tensor

    rng = np.random.default_rng(run.opts.seed)
    calib_idx = rng.permutation(len(parts.train))[: run.opts.calibration_size]
    calib = to_tensor(parts.train.images[np.sort(calib_idx)], spec)
    test_x = to_tensor(parts.test.images, spec)
    return HeldOut(calib, test_x, parts.test.labels, decoding_of(model, test_x))


def export(run: Run, model: Any, spec: InputSpec, held: HeldOut) -> ModelFiles:
    """The FP32 model as ONNX and as OpenVINO IR, each checked against the one it was converted from."""
    from training.export import export_onnx, export_openvino
    from training.package import ModelFiles

    with run.log.step("export_onnx", "Exporting ONNX (checked against torch)"):
        onnx_path = export_onnx(model, spec, run.model_dir / f"{run.name}.onnx", sample=held.x)
    with run.log.step("export_openvino", "Exporting OpenVINO IR (checked against onnxruntime)"):
        xml, binf = export_openvino(onnx_path, run.model_dir, sample=held.x)
    return ModelFiles(onnx_path, xml, binf)


def quantize(run: Run, fp32: ModelFiles, held: HeldOut, class_names: list[str]) -> Quantized:
    from training.export import run_onnx
    from training.quantize import measure, quantize_onnx, quantize_openvino, to_proba

    opts = run.opts
    with run.log.step("quantize", "INT8: onnxruntime static QDQ u8s8 and OpenVINO NNCF"):
        fp32_metrics = measure(to_proba(run_onnx(fp32.onnx, held.x), held.decoding), held.y, class_names)
        q_ort = quantize_onnx(fp32.onnx, run.model_dir / f"{run.name}-int8.onnx", held.calib, held.x, held.y,
                              class_names, decoding=held.decoding, threshold=opts.int8_threshold,
                              calibration_size=opts.calibration_size, fp32_metrics=fp32_metrics)
        q_ov = quantize_openvino(fp32.xml, run.model_dir, held.calib, held.x, held.y, class_names,
                                 decoding=held.decoding, threshold=opts.int8_threshold,
                                 subset_size=opts.calibration_size)
        for q in (q_ort, q_ov):
            run.log.note(f"{q.runtime}: {q.fp32_accuracy:.2f}% -> {q.int8_accuracy:.2f}% ({q.delta:+.2f} points)")
    return Quantized(q_ort, q_ov)


def benchmark(run: Run, fp32: ModelFiles, quantized: Quantized, spec: InputSpec) -> dict[str, dict[str, Any]]:
    """Batch-1 latency per precision and runtime, each with the host it was measured on."""
    from training.benchmark import bench_variants
    from training.package import host_info

    with run.log.step("benchmark", "Benchmarking batch-1 latency, configurations interleaved"):
        lat = bench_variants(fp32.onnx, fp32.xml, quantized.ort.model_path, quantized.ov.model_path, spec,
                             runs=run.opts.bench_runs, threads=run.opts.threads)
        host = host_info(run.opts.threads)
        return {p: {"host": host, **lat[p]} for p in ("fp32", "int8")}


def data_info(run: Run, found: Findings) -> dict[str, Any]:
    """The model card's data table."""
    loaded, cleaned, parts, spec = found.data.loaded, found.data.cleaned, found.parts, found.spec
    return {"source": run.opts.data, "images loaded": len(loaded), "images after cleaning": len(cleaned),
            "classes": cleaned.num_classes, "image size": f"{loaded.image_shape[0]}x{loaded.image_shape[1]}",
            "model input": f"{spec.height}x{spec.width}x{spec.channels}",
            "train / val / test": f"{len(parts.train)} / {len(parts.val)} / {len(parts.test)}",
            "split seed": run.opts.seed}


def package(run: Run, private_key: Ed25519PrivateKey, found: Findings, held: HeldOut, fp32: ModelFiles,
            quantized: Quantized, bench: dict[str, dict[str, Any]]) -> Packaged:
    """Both packages signed, the model card beside them, and with ``--registry`` both added to the registry."""
    from training.model_card import write_model_card
    from training.package import PackageInputs, write_packages

    with run.log.step("package", "Packaging, signing, writing the model card"):
        inputs = PackageInputs(
            name=run.name, version=run.opts.version, spec=found.spec, labels=list(found.data.cleaned.class_names),
            decoding=held.decoding, metrics=found.metrics, fp32=fp32, int8=quantized.files,
            quantization=quantized.results, benchmark_fp32=bench["fp32"], benchmark_int8=bench["int8"],
            data_fingerprint=found.parts.train.fingerprint(), training=found.training,
        )
        fp32_pkg, int8_pkg, fp32_man, int8_man = write_packages(inputs, run.run_dir, private_key)
        info = data_info(run, found)
        card = write_model_card(run.run_dir / "model_card.md", fp32_man, int8_man, quantized.results, data=info,
                                cleaning=found.data.cleaning, cross_validation=found.cv, plots=found.plots)
        registered = register(run, [fp32_pkg, int8_pkg], private_key)
    return Packaged(fp32_pkg, int8_pkg, fp32_man, int8_man, card, info, registered)


def register(run: Run, packages: list[Path], private_key: Ed25519PrivateKey) -> list[str]:
    """With ``--registry``: add the packages there (verified against the key that just signed them)."""
    if run.opts.registry is None:
        return []
    from models.registry import LocalRegistry

    reg = LocalRegistry(Path(run.opts.registry))
    return [str(reg.add(pkg, private_key.public_key()).path) for pkg in packages]


def write_summary(run: Run, found: Findings, quantized: Quantized, bench: dict[str, dict[str, Any]],
                  packaged: Packaged) -> dict[str, Any]:
    """summary.json: the run at a glance, for people and for scripts (``edgefleet train --json`` prints it)."""
    fp32_man, int8_man, log = packaged.fp32_manifest, packaged.int8_manifest, run.log
    summary = {
        "name": run.name, "version": run.opts.version, "run_dir": str(run.run_dir),
        "packages": {"fp32": str(packaged.fp32), "int8": str(packaged.int8)},
        "deployable": {"fp32": fp32_man.deployable, "int8": int8_man.deployable}, "flags": int8_man.flags,
        "model_card": str(packaged.card), "cleaning_report": str(run.run_dir / "cleaning_report.md"),
        "test_accuracy": found.metrics.get("accuracy"), "metrics": fp32_man.metrics, "cross_validation": found.cv,
        "quantization": {q.runtime: {k: v for k, v in q.to_dict().items()} for q in quantized.results},
        "benchmark": bench, "tuning": found.tuning, "registry": packaged.registered,
        "training": {k: found.training[k] for k in ("arch", "best_epoch", "epochs_run", "train_seconds")},
        "data": packaged.data_info, "steps_seconds": log.seconds, "total_seconds": log.total,
    }
    (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    log.console.print(f"[bold green]Done in {log.total:.0f} s[/]: {packaged.fp32.name}, {packaged.int8.name} in "
                      f"{run.run_dir}")
    return summary
