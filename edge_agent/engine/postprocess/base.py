"""The interface every post-processor implements, and the table the decodings register in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from edge_agent.engine.plugins import PluginTable
from edge_agent.engine.postprocess.results import Classification, Detection
from edge_agent.engine.preprocess import Geometry


class PostProcessor(Protocol):
    def __call__(self, outputs: Sequence[np.ndarray], geometry: Geometry) -> tuple[Classification | Detection, ...]:
        """Decode one frame's outputs; ``geometry`` maps model-input pixels back to the frame."""
        ...


POSTPROCESSORS: PluginTable[type] = PluginTable("post-processor")
"""Every decoding registers here with ``@POSTPROCESSORS.register("key")``, the key being a manifest's
``output.decoding``."""
