"""The pipeline host drives any pipeline through the engine's seam (edge_agent.engine.interface): typed stats,
counters cumulative across rebuilds, a refused change that leaves the previous pipeline running."""

from __future__ import annotations


import pytest

from edgefleet.protocol import PipelineConfig
from edge_agent.engine.interface import PipelineFactory, PipelineStats, RunningPipeline, Selection
from edge_agent.errors import ConfigError, SourceError
from edge_agent.fleet.agent import EnginePipelineFactory
from edge_agent.fleet.host import PipelineHost, RunSpec
from edge_agent.fleet.sim import SimPipelineFactory, SyntheticPipeline
from tests.waiting import wait_for


def wait_frames(host: PipelineHost, at_least: int, timeout: float = 10.0) -> PipelineStats:
    return wait_for(lambda: (stats := host.stats()).frames_inferred >= at_least and stats, timeout,
                    lambda: f"{at_least} frames: {host.stats()}")


def test_both_factories_and_their_pipelines_fit_the_seam() -> None:
    factories: list[PipelineFactory] = [SimPipelineFactory(), EnginePipelineFactory()]
    assert [f.needs_model for f in factories] == [False, True]
    pipeline, selection = SimPipelineFactory()(None, None, "synthetic", PipelineConfig(), [])
    assert isinstance(pipeline, RunningPipeline) and isinstance(pipeline, SyntheticPipeline)
    assert selection == Selection("numpy", "CPU", "simulated device")
    assert isinstance(pipeline.stats(), PipelineStats)


def test_counters_stay_cumulative_across_rebuilds() -> None:
    host = PipelineHost(SimPipelineFactory(fps=200), [])
    try:
        host.apply(RunSpec("synthetic", PipelineConfig()))
        first = wait_frames(host, 5)
        host.apply(RunSpec("synthetic:other", PipelineConfig()))  # another camera: a rebuild
        assert host.rebuilds == 2
        later = wait_frames(host, first.frames_inferred + 5)
        assert later.frames_captured >= first.frames_captured
        assert later.backend == "numpy" and later.camera_state == "streaming"
    finally:
        host.stop()


def test_a_refused_change_keeps_the_previous_pipeline_running() -> None:
    host = PipelineHost(SimPipelineFactory(fps=200), [])
    try:
        host.apply(RunSpec("synthetic", PipelineConfig()))
        with pytest.raises(ConfigError, match="unknown camera source"):
            host.apply(RunSpec("/dev/video9", PipelineConfig()))
        assert host.spec is not None and host.spec.camera == "synthetic" and host.running
        before = host.stats().frames_inferred
        wait_frames(host, before + 3)
    finally:
        host.stop()


def test_without_a_model_the_factory_still_checks_the_camera() -> None:
    host = PipelineHost(EnginePipelineFactory(), [])
    with pytest.raises(ConfigError):
        host.apply(RunSpec("ftp://camera.example/stream", PipelineConfig()))
    host.apply(RunSpec("synthetic", PipelineConfig()))  # accepted: runs once a model arrives
    assert not host.running and host.stats() == PipelineStats()
    with pytest.raises(SourceError):
        EnginePipelineFactory().check_source("ftp://camera.example/stream")
