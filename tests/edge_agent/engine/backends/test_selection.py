"""Which backend and device a package gets, on made-up machines (pure logic; no runtime is consulted)."""

from __future__ import annotations

import pytest

from edge_agent.engine.backends import Available, select_backend
from models.manifest import InputSpec, Manifest, OpenVinoFiles, Runtimes

CPU_ONLY = Available(("CPU",), ("CPUExecutionProvider",))
WITH_NPU = Available(("CPU", "NPU"), ("CPUExecutionProvider",))
INTEL_GPU = Available(("CPU", "GPU", "NPU"), ("CPUExecutionProvider",))
CUDA_BOX = Available(("CPU",), ("CUDAExecutionProvider", "CPUExecutionProvider"))
ORT_ONLY = Available((), ("CPUExecutionProvider",))
OV_ONLY = Available(("CPU",), ())


def package(onnx: bool = True, ir: bool = True, precision: str = "int8", benchmark: dict | None = None) -> Manifest:
    return Manifest(name="m", version="1", task="classification", input=InputSpec(shape=[1, 3, 8, 8]), labels=["a"],
                    runtimes=Runtimes(onnx="m.onnx" if onnx else None,
                                      openvino=OpenVinoFiles(xml="m.xml", bin="m.bin") if ir else None),
                    precision=precision, benchmark=benchmark or {})


@pytest.mark.parametrize(
    ("machine", "pkg", "backend", "device", "want_backend", "want_device", "fallback"),
    [
        (CPU_ONLY, package(), None, None, "openvino", "CPU", False),
        (CPU_ONLY, package(ir=False), None, None, "onnxruntime", "CPU", False),
        (CPU_ONLY, package(onnx=False), None, None, "openvino", "CPU", False),
        (WITH_NPU, package(), None, None, "openvino", "NPU", False),
        (INTEL_GPU, package(), None, None, "openvino", "GPU", False),
        (INTEL_GPU, package(), None, "NPU", "openvino", "NPU", False),
        (CUDA_BOX, package(), None, None, "onnxruntime", "GPU", False),
        (CUDA_BOX, package(onnx=False), None, None, "openvino", "CPU", False),
        (CPU_ONLY, package(), None, "GPU", "openvino", "CPU", True),
        (CPU_ONLY, package(ir=False), None, "NPU", "onnxruntime", "CPU", True),
        (CPU_ONLY, package(), "onnxruntime", None, "onnxruntime", "CPU", False),
        (CPU_ONLY, package(ir=False), "openvino", None, "openvino", "CPU", False),  # OpenVINO reads ONNX too
        (CPU_ONLY, package(onnx=False), "onnxruntime", None, "openvino", "CPU", True),  # ORT cannot read IR
        (ORT_ONLY, package(), "openvino", None, "onnxruntime", "CPU", True),  # not installed
        (OV_ONLY, package(), None, None, "openvino", "CPU", False),
        (CPU_ONLY, package(), None, "AUTO", "openvino", "AUTO", False),
        (ORT_ONLY, package(), None, "AUTO", "onnxruntime", "CPU", False),
        (WITH_NPU, package(), "onnxruntime", "NPU", "onnxruntime", "CPU", True),
        (CPU_ONLY, package(), None, "TPU", "openvino", "CPU", True),
        (CPU_ONLY, package(benchmark={"onnxruntime_ms": 1.5, "openvino_ms": 2.5}), None, None, "onnxruntime", "CPU",
         False),
    ],
)
def test_selection_table(machine, pkg, backend, device, want_backend, want_device, fallback):
    sel = select_backend(pkg, backend, device, available=machine)
    assert (sel.backend, sel.device) == (want_backend, want_device), sel.describe()
    assert bool(sel.fallback) == fallback, sel.describe()
    assert sel.reason


def test_absent_gpu_falls_back_to_cpu_and_says_what_exists():
    sel = select_backend(package(), None, "GPU", available=CPU_ONLY)
    assert "GPU requested but not available" in sel.fallback
    assert "OpenVINO devices: CPU" in sel.fallback and "onnxruntime providers: CPU" in sel.fallback
    assert sel.device == "CPU"


def test_reason_names_the_package_benchmark_when_it_decides():
    sel = select_backend(package(benchmark={"openvino_int8_ms": 1.9, "onnxruntime_int8_ms": 2.5}),
                         available=CPU_ONLY)
    assert sel.backend == "openvino" and "1.90 ms" in sel.reason and "2.50 ms" in sel.reason


def test_nothing_installed_that_reads_the_package_is_an_error():
    from edge_agent.errors import DeviceUnavailable

    with pytest.raises(DeviceUnavailable, match="no installed runtime"):
        select_backend(package(onnx=False), available=ORT_ONLY)
