"""Both backends load real models on this machine's CPU, agree with each other, and the async path calls back
once per submitted frame with that frame's own result."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge_agent.engine.backends import BACKENDS, BackendOptions, Selection, load_model, probe_available
from edge_agent.engine.backends.onnx import providers_for
from edge_agent.errors import BackendError, DeviceUnavailable
from tests.edge_agent.engine.inference_fixtures import color_model, conv_model, onnx_only_model  # noqa: F401

EXACT = BackendOptions(exact_fp32=True)


def test_this_machine_has_both_runtimes_on_cpu():
    available = probe_available()
    assert "CPU" in available.openvino_devices
    assert "CPUExecutionProvider" in available.ort_providers


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backend_runs_a_real_model_and_agrees_with_the_other(conv_model, backend):
    directory, manifest = conv_model
    x = np.random.default_rng(1).normal(size=(1, 3, 32, 32)).astype(np.float32)
    model = load_model(directory, manifest, Selection(backend, "CPU", "test"), EXACT)
    other = load_model(directory, manifest, Selection({"onnxruntime": "openvino"}.get(backend, "onnxruntime"),
                                                      "CPU", "test"), EXACT)
    try:
        (got,), (want,) = model.infer(x), other.infer(x)
        assert got.shape == (1, 5)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        assert np.abs(got).sum() > 0
    finally:
        model.close()
        other.close()


def test_openvino_reads_an_onnx_only_package(onnx_only_model):
    directory, manifest = onnx_only_model
    model = load_model(directory, manifest, Selection("openvino", "CPU", "test"), EXACT)
    assert model.infer(np.zeros((1, 3, 32, 32), np.float32))[0].shape == (1, 5)
    model.close()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_async_path_returns_each_frames_own_result(color_model, backend):
    directory, manifest = color_model
    model = load_model(directory, manifest, Selection(backend, "CPU", "test"),
                       BackendOptions(performance="throughput", streams=2))
    results: dict[int, np.ndarray] = {}
    lock = threading.Lock()

    def done(tag, outputs, ms, error):
        assert error is None and ms >= 0
        with lock:
            results[tag] = outputs[0].copy()

    colors = [np.eye(3, dtype=np.float32)[i % 3] for i in range(30)]
    for tag, color in enumerate(colors):
        slot = model.acquire()
        slot.input[...] = color[None, :, None, None]  # write straight into the request's bound input
        model.submit(slot, tag, done)
    model.wait_all()
    model.close()
    assert sorted(results) == list(range(30))
    for tag, color in enumerate(colors):
        assert int(np.argmax(results[tag])) == int(np.argmax(color)), f"frame {tag} got another frame's result"


def test_openvino_lanes_let_two_threads_submit_at_once(color_model):
    directory, manifest = color_model
    model = load_model(directory, manifest, Selection("openvino", "CPU", "test"), BackendOptions(lanes=2))
    assert model.lanes == 2
    results: dict[tuple[int, int], int] = {}
    lock = threading.Lock()

    def done(tag, outputs, ms, error):
        with lock:
            results[tag] = int(np.argmax(outputs[0]))

    def feed(lane: int) -> None:
        for i in range(20):
            slot = model.acquire(lane)
            assert slot.lane == lane
            slot.input[...] = np.eye(3, dtype=np.float32)[(i + lane) % 3][None, :, None, None]
            model.submit(slot, (lane, i), done)

    threads = [threading.Thread(target=feed, args=(lane,)) for lane in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    model.wait_all()
    model.close()
    assert results == {(lane, i): (i + lane) % 3 for lane in (0, 1) for i in range(20)}


def test_openvino_keeps_several_requests_in_flight(color_model):
    directory, manifest = color_model
    model = load_model(directory, manifest, Selection("openvino", "CPU", "test"),
                       BackendOptions(performance="throughput", streams=2))
    assert model.max_in_flight >= 2
    model.close()


def test_absent_device_is_a_clear_error_not_a_crash(color_model):
    directory, manifest = color_model
    with pytest.raises(DeviceUnavailable, match="OpenVINO has no NPU here"):
        load_model(directory, manifest, Selection("openvino", "NPU", "test"))
    with pytest.raises(DeviceUnavailable, match="no execution provider for GPU"):
        providers_for("GPU", ["CPUExecutionProvider"])


def test_missing_model_file_is_a_backend_error(color_model, tmp_path):
    _, manifest = color_model
    with pytest.raises(BackendError, match="could not load"):
        load_model(tmp_path, manifest, Selection("onnxruntime", "CPU", "test"))


def test_onnxruntime_providers_are_known_without_importing_it():
    from edge_agent.engine.backends.onnx import installed_providers

    assert "CPUExecutionProvider" in installed_providers()


def test_provider_lists_put_cpu_last():
    assert providers_for("GPU", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("NPU", ["OpenVINOExecutionProvider", "CPUExecutionProvider"]) == [
        ("OpenVINOExecutionProvider", {"device_type": "NPU"}), "CPUExecutionProvider"]
    assert providers_for("AUTO", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert sorted(BACKENDS.keys()) == ["onnxruntime", "openvino"]


@pytest.mark.parametrize("color", ["RGB", "BGR"])
def test_openvino_folds_preprocessing_into_the_model_with_the_same_result(conv_model, color):
    from edge_agent.engine.preprocess import Preprocessor, frame_spec
    from models.manifest import InputSpec

    directory, manifest = conv_model
    spec = InputSpec(shape=[1, 3, 32, 32], color_order=color, scale=1 / 255, mean=[0.485, 0.456, 0.406],
                     std=[0.229, 0.224, 0.225])
    manifest = manifest.model_copy(update={"input": spec})
    host = load_model(directory, manifest, Selection("openvino", "CPU", "test"), EXACT)
    folded = load_model(directory, manifest, Selection("openvino", "CPU", "test"),
                        BackendOptions(exact_fp32=True, embed_preprocessing=True))
    try:
        assert folded.input_spec == frame_spec(spec)
        assert folded.input_shape == (1, 32, 32, 3) and folded.input_dtype == np.uint8
        frame = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        (want,) = host.infer(Preprocessor(spec)(frame))
        (got,) = folded.infer(Preprocessor(folded.input_spec)(frame))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        assert np.abs(want).sum() > 0
    finally:
        host.close()
        folded.close()


def test_grey_models_and_onnxruntime_keep_the_packages_own_input(conv_model):
    import openvino as ov

    from edge_agent.engine.backends.openvino import embed_preprocessing
    from models.manifest import InputSpec

    grey = InputSpec(shape=[1, 1, 8, 8], color_order="GRAY")
    assert embed_preprocessing(ov.Model([], [], "empty"), grey) is grey  # OpenCV's rounding grey, as training
    directory, manifest = conv_model
    model = load_model(directory, manifest, Selection("onnxruntime", "CPU", "test"),
                       BackendOptions(embed_preprocessing=True))
    assert model.input_spec == manifest.input
    model.close()
