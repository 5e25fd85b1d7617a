"""The real engine's side of a hot model swap (the :class:`~edge_agent.engine.interface.HotSwap` seam).

A new model is loaded next to the one serving frames, with the same backend choice and options the builder
uses, so the health check probes exactly what will run; the pipeline's own ``swap`` then changes it between
two frames. Kept out of the engine so the engine stays unaware of updates and health checks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.protocol import PipelineConfig
from edge_agent.engine.interface import RunningPipeline, SampleRun, Selection
from edge_agent.errors import ConfigError
from models.manifest import Manifest


class EngineStagedModel:
    """A loaded backend with its pre- and post-processing, not yet serving."""

    def __init__(self, model: Any, selection: Selection, preprocessor: Any, postprocessor: Any) -> None:
        self.model, self.selection = model, selection
        self.preprocessor, self.postprocessor = preprocessor, postprocessor

    def run_sample(self, image: np.ndarray | None = None) -> float:
        """The whole per-frame path on one frame, so a model whose outputs do not decode fails here, not live."""
        return self.probe(image).inference_ms

    def probe(self, image: np.ndarray | None = None) -> SampleRun:
        """One full pass (preprocess, inference, decoding) kept whole: raw outputs and results (`self_test`)."""
        if image is None:
            spec = self.model.input_spec
            image = np.zeros((spec.height, spec.width, 3), dtype=np.uint8)
        tensor = self.preprocessor(image)
        started = time.perf_counter()
        outputs = self.model.infer(tensor)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        height, width = image.shape[:2]
        results = self.postprocessor(outputs, self.preprocessor.geometry(width, height))
        return SampleRun(elapsed_ms, [np.asarray(o) for o in outputs], tuple(results))

    def run(self, image: np.ndarray) -> tuple[tuple[Any, ...], float]:
        """A live frame's results and inference milliseconds (what a shadow evaluation compares)."""
        sample = self.probe(image)
        return sample.results, sample.inference_ms

    def close(self) -> None:
        self.model.close()


def load_staged(model_dir: Path, manifest: Manifest, config: PipelineConfig) -> EngineStagedModel:
    """Load like the builder does for the fleet agent (runtime-side preprocessing, default lanes)."""
    from edge_agent.engine.backends import BackendOptions
    from edge_agent.engine.builder import load_selected
    from edge_agent.engine.postprocess import build_postprocessor
    from edge_agent.engine.preprocess import Preprocessor

    postprocessor = build_postprocessor(manifest, top_k=config.top_k)
    model, selection = load_selected(model_dir, manifest, config, BackendOptions(embed_preprocessing=True))
    try:
        preprocessor = Preprocessor(model.input_spec)
    except BaseException:
        model.close()
        raise
    return EngineStagedModel(model, selection, preprocessor, postprocessor)


def swap_staged(pipeline: RunningPipeline, staged: Any) -> None:
    """Hand ``staged`` to a running engine pipeline; the old backend is closed once its frames are done."""
    from edge_agent.engine.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or not isinstance(staged, EngineStagedModel):
        raise ConfigError("this pipeline cannot change its model in place")
    pipeline.swap(staged.model, staged.preprocessor, staged.postprocessor)
