"""The pipeline on real sources, a real capture thread and real backends (CPU)."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from edgefleet.protocol import PipelineConfig
from edge_agent.engine.backends import BackendOptions, Selection, load_model
from edge_agent.engine.capture import CaptureThread
from edge_agent.engine.pipeline import Pipeline
from edge_agent.engine.postprocess import Result, build_postprocessor
from edge_agent.engine.preprocess import Preprocessor
from edge_agent.engine.builder import build_pipeline
from edge_agent.engine.sources import open_source
from tests.edge_agent.engine.inference_fixtures import COLORS, color_model, conv_model  # noqa: F401
from tests.waiting import wait_for


class Collect:
    def __init__(self, stop_after: int | None = None) -> None:
        self.results: list[Result] = []
        self.enough = threading.Event()
        self.stop_after = stop_after

    def __call__(self, result: Result) -> None:
        self.results.append(result)
        if self.stop_after and len(self.results) >= self.stop_after:
            self.enough.set()


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_synthetic_source_gives_ordered_results_and_consistent_counters(color_model, backend):
    directory, manifest = color_model
    sink = Collect(stop_after=40)
    config = PipelineConfig(backend=backend, device="CPU", top_k=2)
    pipeline, selection = build_pipeline(directory, manifest, "synthetic:64x48", config, [sink],
                                         source_options={"realtime": False})
    assert (selection.backend, selection.device) == (backend, "CPU")
    pipeline.start()
    assert sink.enough.wait(20)
    pipeline.stop()
    stats = pipeline.stats()
    indexes = [r.frame_index for r in sink.results]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    assert all(r.results and r.results[0].label in COLORS and len(r.results) == 2 for r in sink.results)
    assert all(r.latency_ms >= r.inference_ms >= 0 for r in sink.results)
    assert stats.frames_inferred == len(sink.results) >= 40
    assert stats.frames_captured >= stats.frames_inferred + stats.frames_dropped
    assert stats.latency_ms_p50 is not None and stats.latency_ms_p50 <= stats.latency_ms_p99
    assert (stats.backend, stats.device) == (backend, "CPU")


def test_a_slow_consumer_on_a_live_camera_drops_frames_and_counts_them(color_model):
    directory, manifest = color_model
    slow = Collect(stop_after=8)

    def sink(result: Result) -> None:
        time.sleep(0.03)  # slower than the 400 fps camera: the capture must replace frames nobody took
        slow(result)

    pipeline, _ = build_pipeline(directory, manifest, "synthetic:64x48@400", PipelineConfig(device="CPU"), [sink],
                                 backend_options=BackendOptions(streams=1))
    pipeline.start()
    assert slow.enough.wait(20)
    pipeline.stop()
    stats = pipeline.stats()
    assert stats.frames_dropped > 0
    assert stats.frames_captured >= stats.frames_inferred + stats.frames_dropped


def test_a_sink_that_raises_does_not_stop_the_pipeline(color_model):
    directory, manifest = color_model
    good = Collect(stop_after=20)

    def broken(result: Result) -> None:
        raise RuntimeError("sink bug")

    pipeline, _ = build_pipeline(directory, manifest, "synthetic:64x48", PipelineConfig(device="CPU"),
                                 [broken, good], source_options={"realtime": False})
    pipeline.start()
    assert good.enough.wait(20)
    pipeline.stop()
    assert pipeline.stats().frames_failed == 0


def test_colours_are_classified_correctly_end_to_end(color_model, tmp_path):
    """A video of pure blue, then green frames (BGR on disk) comes out as blue then green."""
    directory, manifest = color_model
    path = tmp_path / "colours.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for bgr in [(255, 0, 0)] * 5 + [(0, 255, 0)] * 5:
        writer.write(np.full((48, 64, 3), bgr, np.uint8))
    writer.release()
    sink = Collect()
    pipeline, _ = build_pipeline(directory, manifest, str(path), PipelineConfig(device="CPU", top_k=1), [sink],
                                 fail_fast=True)
    pipeline.start()
    assert pipeline.wait(20), "a file without looping must end the pipeline"
    pipeline.stop()
    assert [r.results[0].label for r in sink.results] == ["blue"] * 5 + ["green"] * 5
    assert pipeline.stats().frames_inferred == 10


def test_max_fps_limits_how_often_frames_are_taken(color_model):
    directory, manifest = color_model
    sink = Collect(stop_after=3)
    pipeline, _ = build_pipeline(directory, manifest, "synthetic:64x48@200", PipelineConfig(device="CPU",
                                                                                          max_fps=20), [sink])
    pipeline.start()
    assert sink.enough.wait(20)
    pipeline.stop()
    gaps = np.diff([r.captured_at for r in sink.results[:3]])
    assert np.all(gaps >= 0.03), gaps  # 20 fps -> 50 ms apart; frames come every 5 ms from the camera


def test_swap_changes_model_between_frames_without_stopping_the_camera(color_model, conv_model):
    color_dir, color_manifest = color_model
    conv_dir, conv_manifest = conv_model
    sink = Collect()
    pipeline, _ = build_pipeline(color_dir, color_manifest, "synthetic:64x48", PipelineConfig(device="CPU"), [sink],
                                 source_options={"realtime": False})
    pipeline.start()
    wait_for(lambda: len(sink.results) >= 5)
    new_model = load_model(conv_dir, conv_manifest, Selection("onnxruntime", "CPU", "test"))
    pipeline.swap(new_model, Preprocessor(conv_manifest.input), build_postprocessor(conv_manifest))
    swapped_at = len(sink.results)
    wait_for(lambda: len(sink.results) >= swapped_at + 5)
    pipeline.stop()
    labels = [r.results[0].label for r in sink.results]
    first_new = next(i for i, label in enumerate(labels) if label.startswith("class"))
    assert all(label in COLORS for label in labels[:first_new])
    assert all(label.startswith("class") for label in labels[first_new:])
    indexes = [r.frame_index for r in sink.results]
    assert indexes == sorted(indexes)
    assert pipeline.stats().backend == "onnxruntime"


def test_pipeline_built_by_hand_from_its_parts(color_model):
    directory, manifest = color_model
    sink = Collect(stop_after=5)
    capture = CaptureThread(open_source("synthetic:32x32", realtime=False))
    model = load_model(directory, manifest, Selection("openvino", "CPU", "test"))
    pipeline = Pipeline(capture, model, Preprocessor(manifest.input), build_postprocessor(manifest), [sink])
    pipeline.start()
    assert sink.enough.wait(20)
    pipeline.stop()
    assert capture.state == "stopped"
