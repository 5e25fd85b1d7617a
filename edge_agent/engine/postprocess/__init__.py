"""Post-processors: raw output tensors -> Classification / Detection results, chosen by the manifest's
``output.decoding``. Each decoding lives in its own module and registers itself in ``base.POSTPROCESSORS``."""

from __future__ import annotations

from edge_agent.engine.plugins import import_plugins
from edge_agent.engine.postprocess.base import POSTPROCESSORS, PostProcessor
from edge_agent.engine.postprocess.results import Classification, Detection, Result
from models.manifest import Manifest

PLUGIN_MODULES = (
    "edge_agent.engine.postprocess.classification",
    "edge_agent.engine.postprocess.ssd",
    "edge_agent.engine.postprocess.yolo",
)
import_plugins(PLUGIN_MODULES)


def build_postprocessor(manifest: Manifest, *, top_k: int = 3, score_threshold: float | None = None) -> PostProcessor:
    """The post-processor the manifest's decoding names, configured from its labels and output spec."""
    factory = POSTPROCESSORS.get(manifest.output.decoding)
    return factory(manifest, top_k=top_k, score_threshold=score_threshold)


__all__ = ["POSTPROCESSORS", "Classification", "Detection", "PostProcessor", "Result", "build_postprocessor"]
