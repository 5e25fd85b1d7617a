"""Post-processors: raw output tensors -> Classification / Detection results, chosen by the manifest's
``output.decoding``. Each decoding lives in its own module and registers itself here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from edge_agent.engine.postprocess.results import Classification, Detection, Result
from edge_agent.engine.preprocess import Geometry
from edge_agent.engine.plugins import PluginTable
from models.manifest import Manifest


class PostProcessor(Protocol):
    def __call__(self, outputs: Sequence[np.ndarray], geometry: Geometry) -> tuple[Classification | Detection, ...]:
        """Decode one frame's outputs; ``geometry`` maps model-input pixels back to the frame."""
        ...


POSTPROCESSORS: PluginTable[type] = PluginTable("post-processor")

from edge_agent.engine.postprocess import classification, ssd, yolo  # noqa: E402,F401  (they register themselves)


def build_postprocessor(manifest: Manifest, *, top_k: int = 3, score_threshold: float | None = None) -> PostProcessor:
    """The post-processor the manifest's decoding names, configured from its labels and output spec."""
    factory = POSTPROCESSORS.get(manifest.output.decoding)
    return factory(manifest, top_k=top_k, score_threshold=score_threshold)


__all__ = ["POSTPROCESSORS", "Classification", "Detection", "PostProcessor", "Result", "build_postprocessor"]
