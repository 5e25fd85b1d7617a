"""Which backend and device run a package here, and why. Pure logic over what is available, so every rule is
testable with a made-up machine; ``probe_available()`` asks the installed runtimes.

Default order: CUDA (onnxruntime's CUDA provider), an OpenVINO GPU, an OpenVINO NPU, then the faster CPU option
for this package: the manifest's own benchmark when it measured both runtimes, else OpenVINO when the package
ships OpenVINO IR (faster than onnxruntime on x86 CPUs, INT8 and FP32: docs/MEASUREMENTS.md), else
onnxruntime for ONNX-only packages. A request that cannot be met is never fatal: the selection falls back and
``fallback`` carries the DeviceUnavailable text saying what was asked and what exists."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.engine.interface import Selection
from edge_agent.errors import DeviceUnavailable
from models.manifest import Manifest

ORT, OV = "onnxruntime", "openvino"
DEVICES = ("CPU", "GPU", "NPU", "AUTO")


@dataclass(frozen=True)
class Available:
    """What this machine offers: OpenVINO device families (empty when OpenVINO is not installed) and
    onnxruntime execution providers (empty when onnxruntime is not installed)."""

    openvino_devices: tuple[str, ...] = ()
    ort_providers: tuple[str, ...] = ()

    def devices(self, backend: str) -> tuple[str, ...]:
        if backend == OV:
            return self.openvino_devices + (("AUTO",) if self.openvino_devices else ())
        if not self.ort_providers:
            return ()
        found = ["CPU"]
        if "CUDAExecutionProvider" in self.ort_providers or "OpenVINOExecutionProvider" in self.ort_providers:
            found.append("GPU")
        if "OpenVINOExecutionProvider" in self.ort_providers:
            found.append("NPU")
        return tuple(found + ["AUTO"])

    def describe(self) -> str:
        ov = ", ".join(self.openvino_devices) or "not installed"
        ort = ", ".join(p.removesuffix("ExecutionProvider") for p in self.ort_providers) or "not installed"
        return f"OpenVINO devices: {ov}; onnxruntime providers: {ort}"


def probe_available() -> Available:
    from edge_agent.engine.backends import BACKENDS

    ov_devices: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    if OV in BACKENDS:
        ov_devices = tuple(d for d in BACKENDS.get(OV).devices() if d != "AUTO")
    if ORT in BACKENDS:
        from edge_agent.engine.backends.onnx import installed_providers

        providers = tuple(installed_providers())
    return Available(ov_devices, providers)


def _runs(backend: str, manifest: Manifest, available: Available) -> bool:
    """The runtime is installed and can read one of the package's model files (OpenVINO also reads ONNX)."""
    if not available.devices(backend):
        return False
    rt = manifest.runtimes
    return rt.onnx is not None if backend == ORT else (rt.openvino is not None or rt.onnx is not None)


def _cpu_choice(manifest: Manifest, available: Available, only: str | None) -> Selection:
    candidates = [b for b in (OV, ORT) if (only in (None, b)) and _runs(b, manifest, available)]
    if not candidates:
        raise DeviceUnavailable(f"no installed runtime can run {manifest.name} ({available.describe()})")
    if len(candidates) == 1:
        b = candidates[0]
        why = ("the requested backend" if only
               else f"the only runtime here that reads this package's {_formats(manifest)}")
        return Selection(b, "CPU", f"{why}; no accelerator in use")
    measured = _benchmark(manifest)
    if OV in measured and ORT in measured:
        best = min((OV, ORT), key=lambda b: measured[b])
        return Selection(best, "CPU", f"faster on CPU in the package's benchmark "
                                      f"({OV} {measured[OV]:.2f} ms, {ORT} {measured[ORT]:.2f} ms)")
    if manifest.runtimes.openvino is not None:
        return Selection(OV, "CPU", f"package ships OpenVINO IR ({manifest.precision}); OpenVINO is the faster CPU "
                                    "runtime for it (~1.3x INT8, ~2x FP32 vs onnxruntime measured here)")
    return Selection(ORT, "CPU", "package ships ONNX only; onnxruntime runs it natively")


def _accelerated(device: str, manifest: Manifest, available: Available, only: str | None) -> Selection | None:
    """The backend for an accelerator device, or None when none here has it."""
    cuda = "CUDAExecutionProvider" in available.ort_providers
    if device == "GPU" and cuda and only in (None, ORT) and _runs(ORT, manifest, available):
        return Selection(ORT, "GPU", "CUDA execution provider present")
    if device in ("GPU", "NPU") and only in (None, OV) and device in available.openvino_devices \
            and _runs(OV, manifest, available):
        return Selection(OV, device, f"OpenVINO {device} present")
    if device in ("GPU", "NPU") and only == ORT and device in available.devices(ORT) \
            and _runs(ORT, manifest, available):
        return Selection(ORT, device, f"onnxruntime OpenVINO execution provider for {device}")
    return None


def select_backend(manifest: Manifest, requested_backend: str | None = None, requested_device: str | None = None,
                   available: Available | None = None) -> Selection:
    """Choose backend and device for ``manifest``; never raises for an unmet request, only when nothing at all
    can run the package (DeviceUnavailable)."""
    available = available if available is not None else probe_available()
    device = requested_device.upper() if requested_device else None
    problems: list[str] = []
    only = requested_backend
    if only is not None and only not in (ORT, OV):
        problems.append(f"unknown backend {only!r} (known: {ORT}, {OV})")
        only = None
    if only is not None and not _runs(only, manifest, available):
        why = "is not installed" if not available.devices(only) else f"cannot read this package's {_formats(manifest)}"
        problems.append(f"{only} requested but it {why}")
        only = None
    if device is not None and device not in DEVICES:
        problems.append(f"unknown device {requested_device!r} (known: {', '.join(DEVICES)})")
        device = None

    def done(sel: Selection) -> Selection:
        if not problems:
            return sel
        text = "; ".join(problems) + f" -> using {sel.backend} on {sel.device} ({available.describe()})"
        return Selection(sel.backend, sel.device, sel.reason, str(DeviceUnavailable(text)))

    if device in ("GPU", "NPU"):
        sel = _accelerated(device, manifest, available, only)
        if sel is not None:
            return done(Selection(sel.backend, sel.device, f"requested; {sel.reason}"))
        problems.append(f"{device} requested but not available"
                        + (f" to {only}" if only else ""))
        return done(_cpu_choice(manifest, available, only))
    if device == "AUTO":
        if only in (None, OV) and _runs(OV, manifest, available):
            return done(Selection(OV, "AUTO", "requested; OpenVINO AUTO picks among "
                                              f"{', '.join(available.openvino_devices)} at load time"))
        sel = _default(manifest, available, only)
        return done(Selection(sel.backend, sel.device, f"AUTO: {sel.reason}"))
    if device == "CPU":
        return done(_cpu_choice(manifest, available, only))
    return done(_default(manifest, available, only))


def _default(manifest: Manifest, available: Available, only: str | None) -> Selection:
    for device in ("GPU", "NPU"):
        sel = _accelerated(device, manifest, available, only)
        if sel is not None:
            return Selection(sel.backend, sel.device, f"best available: {sel.reason}")
    return _cpu_choice(manifest, available, only)


def _benchmark(manifest: Manifest) -> dict[str, float]:
    """Median latencies the package measured, by runtime, from keys like "openvino_int8_ms" or "onnxruntime"."""
    found: dict[str, float] = {}
    for key, value in manifest.benchmark.items():
        if isinstance(value, dict):
            value = value.get("median_ms", value.get("p50_ms"))
        if not isinstance(value, (int, float)) or value <= 0:
            continue
        k = key.lower()
        for name in (OV, ORT):
            if k.startswith(name) or (name == ORT and k.startswith("onnx") and not k.startswith(OV)):
                found[name] = min(found.get(name, float("inf")), float(value))
    return found


def _formats(manifest: Manifest) -> str:
    rt = manifest.runtimes
    return " + ".join(f for f, present in (("ONNX", rt.onnx), ("OpenVINO IR", rt.openvino)) if present)
