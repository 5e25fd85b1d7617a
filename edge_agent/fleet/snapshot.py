"""The `snapshot` command: the latest camera frame with its results drawn on it (edge_agent.engine.render), as
one JPEG small enough for an MQTT reply.

The JPEG is base64 in the reply, so it must stay under the reply's caps (edgefleet.protocol: command replies
1 MiB on the wire, the `result` field 768 KiB encoded): the default cap is 200 KB of JPEG (about 267 KB of
base64) and at most 500 KB may be asked for. The quality steps down first (85, 70, 55, 40), then the image
halves in size until it fits; a dashboard shows it with `data:image/jpeg;base64,...`.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from pydantic import Field

from edge_agent.engine.postprocess.results import Result
from edge_agent.fleet.commands import Args, CommandFailed

DEFAULT_MAX_BYTES = 200_000
MAX_MAX_BYTES = 500_000  # base64 of this is 667 KB, under the 768 KiB a reply's result may hold
QUALITIES = (85, 70, 55, 40)
MIN_SIDE = 16


class SnapshotArgs(Args):
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=5_000, le=MAX_MAX_BYTES, strict=True,
                           description="largest JPEG to send, in bytes")
    max_width: int | None = Field(None, ge=MIN_SIDE, le=8192, strict=True, description="downscale wider frames")
    annotate: bool = Field(True, description="draw the latest results on the frame")


def encode_jpeg(image: Any, max_bytes: int) -> tuple[bytes, int, tuple[int, int]]:
    """(jpeg, quality, (width, height)) of the first encoding at or under ``max_bytes``."""
    import cv2

    while True:
        height, width = image.shape[:2]
        for quality in QUALITIES:
            ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise CommandFailed("OpenCV could not encode the frame as JPEG")
            if len(buffer) <= max_bytes:
                return buffer.tobytes(), quality, (width, height)
        if min(width, height) // 2 < MIN_SIDE:
            raise CommandFailed(f"the frame does not fit in {max_bytes} bytes even at {width}x{height}")
        image = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)


def snapshot(result: Result | None, args: SnapshotArgs, *, camera: str) -> dict[str, Any]:
    """The reply of `snapshot` for the latest ``result`` (None: no frame has been through the pipeline yet)."""
    import cv2

    from edge_agent.engine.render import draw

    if result is None or result.image is None:
        raise CommandFailed("no frame yet: the pipeline has not produced a result (is a model installed and the "
                            "camera running?)")
    image = result.image.copy()  # the pipeline may reuse its buffer; draw on our own copy
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if args.max_width is not None and image.shape[1] > args.max_width:
        scale = args.max_width / image.shape[1]
        image = cv2.resize(image, (args.max_width, max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    if args.annotate:
        draw(image, _scaled(result, image.shape[1] / result.image.shape[1]), f"#{result.frame_index}")
    jpeg, quality, (width, height) = encode_jpeg(image, args.max_bytes)
    return {"content_type": "image/jpeg", "jpeg_base64": base64.b64encode(jpeg).decode("ascii"),
            "bytes": len(jpeg), "width": width, "height": height, "quality": quality,
            "source_size": [int(result.image.shape[1]), int(result.image.shape[0])], "camera": camera,
            "frame_index": result.frame_index, "age_s": round(max(0.0, time.monotonic() - result.captured_at), 3),
            "results": result.to_dict()["results"]}


def _scaled(result: Result, scale: float) -> Result:
    """The result with its boxes in the resized frame's pixels (classifications carry no coordinates)."""
    from dataclasses import replace

    from edge_agent.engine.postprocess.results import Detection

    if abs(scale - 1.0) < 1e-9:
        return result
    items = tuple(replace(r, box=tuple(v * scale for v in r.box)) if isinstance(r, Detection) else r
                  for r in result.results)
    return replace(result, results=items)
