"""The model card: a markdown page a person reads before trusting a model: what it is for, what data made it,
what cleaning removed, how well it does overall and per class, what INT8 costs, how fast it runs, and its limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from models.manifest import Manifest
from training.quantize import QuantizationResult

_HEADLINE = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "precision", "recall",
             "f1", "auc_ovr_macro", "auc_macro", "auc", "log_loss")


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def _scalar_metrics(metrics: Mapping[str, Any]) -> list[tuple[str, Any]]:
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    order = {k: i for i, k in enumerate(_HEADLINE)}
    return sorted(scalars, key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def _per_class(metrics: Mapping[str, Any]) -> list[str]:
    per = metrics.get("per_class")
    if not isinstance(per, Mapping) or not per:
        return []
    cols = sorted({k for v in per.values() if isinstance(v, Mapping) for k in v})
    return _table(["class", *cols], [[name, *[v.get(c, "") for c in cols]] for name, v in per.items()])


def _confusion(metrics: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    cm = metrics.get("confusion_matrix")
    if not isinstance(cm, Sequence) or not cm:
        return []
    return ["Rows: true class, columns: predicted class.", "",
            *_table(["true \\ predicted", *labels], [[labels[i], *row] for i, row in enumerate(cm)])]


def render_model_card(
    fp32: Manifest,
    int8: Manifest,
    quantization: Sequence[QuantizationResult],
    *,
    data: Mapping[str, Any],
    cleaning: Mapping[str, Any] | None = None,
    cross_validation: Mapping[str, Any] | None = None,
    plots: Mapping[str, Path] | None = None,
    base_dir: Path | None = None,
) -> str:
    """The card as markdown. ``data`` describes the source and split sizes, ``cleaning`` summarises the cleaning
    report, ``plots`` names PNGs (linked relative to ``base_dir``, where the card is written)."""
    m = fp32.metrics
    arch = fp32.training.get("arch", "?")
    out = [f"# Model card: {fp32.name} {fp32.version}", "",
           f"Image classification ({len(fp32.labels)} classes: {', '.join(fp32.labels)}), architecture `{arch}`, "
           f"created {fp32.created_at:%Y-%m-%d %H:%M} UTC.", "",
           "| package | precision | deployable | flags |", "|---|---|---|---|"]
    for man in (fp32, int8):
        out.append(f"| `{man.package_filename}` | {man.precision} | {_fmt(man.deployable)} | "
                   f"{'; '.join(man.flags) or '-'} |")
    spec = fp32.input
    out += ["", "## Intended use", "",
            f"Classify single images of the kinds seen in training ({data.get('source', '?')}) on edge devices, one "
            f"label per image. Input: {spec.color_order} image resized to {spec.height}x{spec.width} ({spec.resize}), "
            f"scaled by {spec.scale:.6g}, normalised with mean {spec.mean} and std {spec.std}, {spec.layout}. "
            f"Output: {fp32.output.decoding} over the labels in manifest order.", "",
            "Not for: images unlike the training data (other sensors, lighting, viewpoints, classes), decisions "
            "about people, or any use where a wrong label is costly without a human check.", "",
            "## Data", ""]
    out += _table(["item", "value"], [[k, v] for k, v in data.items()])
    out += ["", f"Training-data fingerprint (sha256): `{fp32.data_fingerprint}`", "", "## Cleaning", ""]
    if cleaning:
        out += _table(["check", "result"], [[k, v] for k, v in cleaning.items()])
        out += ["", "The full list of files and what happened to each is in `cleaning_report.md`."]
    else:
        out.append("No cleaning report.")
    out += ["", "## Metrics (held-out test set, FP32)", ""]
    out += _table(["metric", "value"], _scalar_metrics(m))
    per = _per_class(m)
    if per:
        out += ["", "### Per class", "", *per]
    cm = _confusion(m, fp32.labels)
    if cm:
        out += ["", "### Confusion matrix", "", *cm]
    if cross_validation:
        out += ["", "### Cross-validation", ""]
        out += _table(["item", "value"], [[k, v] for k, v in cross_validation.items()])
    out += ["", "## INT8 quantization", "",
            "Calibrated on training images; accuracy measured on the test set in the runtime that serves each model.",
            ""]
    out += _table(["runtime", "method", "calibration images", "FP32 accuracy %", "INT8 accuracy %", "delta (points)",
                   "threshold", "deployable"],
                  [[q.runtime, q.method, q.calibration_samples, q.fp32_accuracy, q.int8_accuracy, q.delta,
                    q.threshold, q.deployable] for q in quantization])
    out += ["", "## Latency (batch 1, this build machine)", ""]
    rows = []
    for man in (fp32, int8):
        for key, val in man.benchmark.items():
            if isinstance(val, Mapping) and "median_ms" in val:
                rows.append([man.precision, key, val["median_ms"], val.get("p90_ms", ""), val.get("runs", "")])
    out += _table(["precision", "runtime", "median ms", "p90 ms", "runs"], rows)
    host = fp32.benchmark.get("host")
    if isinstance(host, Mapping):
        out += ["", f"Measured on {host.get('cpu')} with {host.get('threads')} threads. `openvino` is the CPU's "
                "default precision (bf16 where the CPU has it), `openvino_f32` forces exact FP32. Latency on a "
                "device differs: measure it there (`edgefleet model bench`)."]
    if plots:
        out += ["", "## Plots", ""]
        for title, path in plots.items():
            rel = Path(path).relative_to(base_dir) if base_dir and Path(path).is_relative_to(base_dir) else path
            out.append(f"![{title}]({rel})")
    out += ["", "## Limits", "",
            "- Metrics come from one held-out test split of the data above; new conditions need new test data.",
            "- Classes with few test images have wide uncertainty on their per-class numbers.",
            "- The model always answers with one of its labels: it has no 'none of these' class.",
            *[f"- Flag: {f}" for f in dict.fromkeys([*fp32.flags, *int8.flags])], ""]
    return "\n".join(out)


def write_model_card(path: Path, fp32: Manifest, int8: Manifest, quantization: Sequence[QuantizationResult],
                     **kw: Any) -> Path:
    """Write the card to ``path`` (plots are linked relative to its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_model_card(fp32, int8, quantization, base_dir=path.parent, **kw), encoding="utf-8")
    return path
