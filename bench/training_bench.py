"""Training benchmark: the issue-3 targets, measured on this machine.

1. `edgefleet train --data digits --cv 5` end to end (a real subprocess, the defaults a user gets): test accuracy,
   5-fold CV spread, INT8 accuracy delta per runtime, wall time.
2. The MobileNetV2-style net (width 1.0, 3x224x224, 1000 classes, ~3.5M parameters) FP32 vs INT8, batch 1,
   2 threads: onnxruntime FP32 vs static QDQ u8s8; OpenVINO FP32 (CPU default = bf16 here, and the exact-f32 hint)
   vs NNCF INT8. Configurations are interleaved round by round (the CPU changes speed state) and quoted as ratios.

Writes bench/results/training.json and bench/results/training.md. Run: `.venv/bin/python bench/training_bench.py`
(`--skip-train` for the latency part alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

TARGETS = {"digits_test_accuracy_min": 98.0, "cv_spread_max_points": 1.5, "int8_delta_max_points": 1.0,
           "train_wall_max_s": 600.0, "int8_over_fp32_openvino_max": 0.6}


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def bench_digits(tmp: Path) -> dict:
    exe = Path(sys.executable).parent / "edgefleet"
    cmd = [str(exe), "train", "--data", "digits", "--cv", "5", "--out", str(tmp / "out"), "--signing-key",
           str(tmp / "keys" / "sign.pem"), "--json", "--quiet"]
    load_before = _load()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    wall = time.perf_counter() - t
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"edgefleet train failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    s = json.loads(proc.stdout)
    cv = s["cross_validation"]
    q = s["quantization"]
    return {
        "command": " ".join(["edgefleet", *cmd[1:]]),
        "wall_s": round(wall, 1), "cpu_s": round(cpu_s, 1), "pipeline_s": s["total_seconds"], "steps_s": s["steps_seconds"],
        "load_average_before": load_before, "load_average_after": _load(),
        "test_accuracy_pct": round(100 * s["test_accuracy"], 2),
        "cv_mean_pct": round(100 * cv["mean_accuracy"], 2), "cv_spread_points": round(100 * cv["spread"], 2),
        "cv_folds_pct": [round(100 * a, 2) for a in cv["fold_accuracies"]],
        "int8": {rt: {"fp32_pct": v["fp32_accuracy"], "int8_pct": v["int8_accuracy"], "delta_points": v["delta"],
                      "deployable": v["deployable"]} for rt, v in q.items()},
        "training": s["training"], "data": s["data"],
    }


def bench_mobilenet(tmp: Path, rounds: int, runs_per_round: int, threads: int) -> dict:
    import numpy as np
    import torch

    from models.manifest import InputSpec
    from training.architectures import build_model, count_parameters
    from training.benchmark import BenchConfig, bench_interleaved
    from training.export import export_onnx, export_openvino
    from training.preprocess import input_spec_for, to_tensor
    from training.quantize import quantize_onnx, quantize_openvino
    from training.synthetic import make_shapes

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = build_model("mobilenetv2", 1000, 3, 224).eval()
    # Untrained weights; torch's default Linear init for the head (instead of N(0, 0.01)) gives decisive logits, so
    # INT8-vs-FP32 top-1 agreement measures quantization error rather than near-ties.
    model.head[-1].reset_parameters()
    images, labels = make_shapes(96, image_size=224, seed=0)

    class _Images:  # input_spec_for needs only .images
        pass

    holder = _Images()
    holder.images = images  # type: ignore[attr-defined]
    spec: InputSpec = input_spec_for(holder, 224, normalization="imagenet")
    x = to_tensor(images, spec)
    calib, test_x = x[:64], x[64:]
    with torch.no_grad():  # labels for the accuracy check: what the FP32 net itself predicts (it is untrained)
        test_y = model(torch.from_numpy(test_x)).argmax(1).numpy()
    names = [str(i) for i in range(1000)]
    onnx_path = export_onnx(model, spec, tmp / "mobilenetv2.onnx", sample=test_x[:2], tolerance=1e-3)
    xml, _ = export_openvino(onnx_path, tmp, sample=test_x[:2], tolerance=1e-3)
    t = time.perf_counter()
    q_ort = quantize_onnx(onnx_path, tmp / "mobilenetv2-int8.onnx", calib, test_x, test_y, names, calibration_size=64)
    ort_q_s = time.perf_counter() - t
    t = time.perf_counter()
    q_ov = quantize_openvino(xml, tmp, calib, test_x, test_y, names, subset_size=64)
    ov_q_s = time.perf_counter() - t
    configs = [BenchConfig("onnxruntime FP32", onnx_path, "onnxruntime"),
               BenchConfig("onnxruntime INT8 (QDQ u8s8)", q_ort.model_path, "onnxruntime"),
               BenchConfig("OpenVINO FP32 (CPU default: bf16)", xml, "openvino"),
               BenchConfig("OpenVINO FP32 (f32 hint)", xml, "openvino", "f32"),
               BenchConfig("OpenVINO INT8 (NNCF)", q_ov.model_path, "openvino")]
    lat = bench_interleaved(configs, spec, rounds=rounds, runs_per_round=runs_per_round, warmup=20, threads=threads)
    med = {k: v["median_ms"] for k, v in lat.items()}
    ratios = {
        "onnxruntime INT8 / FP32": round(med["onnxruntime INT8 (QDQ u8s8)"] / med["onnxruntime FP32"], 3),
        "OpenVINO INT8 / FP32 default (bf16)": round(med["OpenVINO INT8 (NNCF)"] /
                                                     med["OpenVINO FP32 (CPU default: bf16)"], 3),
        "OpenVINO INT8 / FP32 f32-hint": round(med["OpenVINO INT8 (NNCF)"] / med["OpenVINO FP32 (f32 hint)"], 3),
    }
    return {
        "model": "mobilenetv2 width 1.0, 1x3x224x224, 1000 classes (untrained weights)",
        "parameters": count_parameters(model), "threads": threads, "rounds": rounds,
        "runs_per_round": runs_per_round, "latency": lat, "ratios": ratios,
        "agreement_with_fp32_pct": {"onnxruntime": q_ort.int8_accuracy, "openvino": q_ov.int8_accuracy},
        "quantize_seconds": {"onnxruntime": round(ort_q_s, 1), "openvino": round(ov_q_s, 1)},
        "sizes_mb": {p.name: round(p.stat().st_size / 1e6, 2) for p in
                     (onnx_path, q_ort.model_path, xml.with_suffix(".bin"), q_ov.model_path.with_suffix(".bin"))},
        "load_average": _load(),
    }


def _yes(ok: bool) -> str:
    return "met" if ok else "NOT met"


def markdown(res: dict) -> str:
    lines = ["# Training benchmark", "", f"Machine: {res['host']['cpu']}, {res['host']['cores']} cores; "
             f"{res['date']}. Produced by `bench/training_bench.py`.", ""]
    d = res.get("digits")
    if d:
        worst = min(v["delta_points"] for v in d["int8"].values())
        lines += ["## `edgefleet train --data digits --cv 5`", "", "| target | measured | result |", "|---|---|---|",
                  f"| test accuracy >= 98% | {d['test_accuracy_pct']:.2f}% | "
                  f"{_yes(d['test_accuracy_pct'] >= TARGETS['digits_test_accuracy_min'])} |",
                  f"| 5-fold CV spread < 1.5 points | {d['cv_spread_points']:.2f} points (mean {d['cv_mean_pct']:.2f}%, "
                  f"folds {', '.join(f'{a:.2f}' for a in d['cv_folds_pct'])}) | "
                  f"{_yes(d['cv_spread_points'] < TARGETS['cv_spread_max_points'])} |",
                  f"| INT8 delta within 1 point | " + ", ".join(f"{rt} {v['delta_points']:+.2f}" for rt, v in
                                                                 d["int8"].items()) +
                  f" | {_yes(-worst <= TARGETS['int8_delta_max_points'])} |",
                  f"| whole run within 10 min on 2 cores | {d['wall_s']:.0f} s wall, {d.get('cpu_s', '?')} s CPU "
                  f"(load average before {d['load_average_before']}, after {d['load_average_after']}; a machine "
                  f"shared with other work) | {_yes(d['wall_s'] <= TARGETS['train_wall_max_s'])} |", "",
                  "Step times (s): " + ", ".join(f"{k} {v}" for k, v in d["steps_s"].items()), ""]
    m = res.get("mobilenet")
    if m:
        lines += [f"## MobileNetV2-style, FP32 vs INT8 ({m['parameters'] / 1e6:.2f}M parameters, batch 1, "
                  f"{m['threads']} threads, {m['rounds']} interleaved rounds x {m['runs_per_round']} runs)", "",
                  "| configuration | median ms | p90 ms |", "|---|---|---|"]
        lines += [f"| {k} | {v['median_ms']:.2f} | {v['p90_ms']:.2f} |" for k, v in m["latency"].items()]
        lines += ["", "| ratio | value | target <= 0.6 |", "|---|---|---|"]
        lines += [f"| {k} | {v:.3f} | {_yes(v <= TARGETS['int8_over_fp32_openvino_max'])} |"
                  for k, v in m["ratios"].items()]
        lines += ["", f"INT8 top-1 agreement with FP32 on 32 images: {m['agreement_with_fp32_pct']}. Sizes (MB): "
                  f"{m['sizes_mb']}. Quantization took {m['quantize_seconds']} s. Load average after: "
                  f"{m['load_average']}.", "",
                  "The OpenVINO FP32 default runs in bf16 on this CPU (INFERENCE_PRECISION_HINT); the f32 hint is "
                  "exact FP32. Both ratios are reported: the target is judged against exact FP32, and the bf16 "
                  "row shows what INT8 gains over the CPU's own default.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--runs-per-round", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from training.package import host_info

    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": host_info(args.threads),
                 "python": platform.python_version(), "targets": TARGETS}
    previous = json.loads((RESULTS / "training.json").read_text()) if (RESULTS / "training.json").exists() else {}
    for part, skipped in (("digits", args.skip_train), ("mobilenet", args.skip_latency)):
        if skipped and part in previous:
            res[part] = previous[part]  # keep the last measurement of the part not rerun
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_train:
            res["digits"] = bench_digits(Path(tmp) / "digits")
            print(json.dumps(res["digits"], indent=2), flush=True)
        if not args.skip_latency:
            (Path(tmp) / "mnv2").mkdir()
            res["mobilenet"] = bench_mobilenet(Path(tmp) / "mnv2", args.rounds, args.runs_per_round, args.threads)
            print(json.dumps(res["mobilenet"], indent=2), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "training.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
