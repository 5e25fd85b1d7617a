"""A deterministic generator of labelled shape images (the ``synthetic`` data source).

Purpose: smoke tests, demos and pipeline checks when no real data is at hand. Every run with the same seed gives the
same pixels, so the whole workflow (clean, split, train, export, quantize, package, deploy) can be exercised
end-to-end anywhere, offline, in seconds.

Limits: the images are simple filled shapes (circle, square, triangle, cross, ring) drawn with OpenCV at a random
position, size, rotation and colour on a noisy random background. A model that scores well here has learnt to tell
these drawings apart, nothing more: it says nothing about accuracy on real camera frames, lighting, occlusion or
clutter. Use ``digits`` (real handwriting) or your own folder to judge a model.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring")


def make_shapes(n: int, *, image_size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n`` RGB images (n, S, S, 3) uint8 and balanced labels (index into ``SHAPES``)."""
    if n < len(SHAPES):
        raise ValueError(f"synthetic data needs at least {len(SHAPES)} samples, got {n}")
    if image_size < 8:
        raise ValueError("synthetic images need image_size >= 8")
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % len(SHAPES)
    rng.shuffle(labels)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = _draw(SHAPES[int(label)], image_size, rng)
    return images, labels


def _draw(shape: str, s: int, rng: np.random.Generator) -> np.ndarray:
    background = rng.integers(0, 256, size=3)
    img = np.clip(background + rng.normal(0, 12, size=(s, s, 3)), 0, 255).astype(np.uint8)
    colour = (background + 128 + rng.integers(-50, 50, size=3)) % 256  # contrasting but random
    colour = tuple(int(c) for c in colour)
    r = rng.uniform(0.2, 0.38) * s
    cx, cy = (rng.uniform(r, s - r) for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    sub = 4  # draw with sub-pixel precision for smooth edges at small sizes
    centre = (int(round(cx * (1 << sub))), int(round(cy * (1 << sub))))

    def poly(k: int, radius: float) -> np.ndarray:
        pts = [(cx + radius * math.cos(angle + 2 * math.pi * j / k), cy + radius * math.sin(angle + 2 * math.pi * j / k))
               for j in range(k)]
        return np.array([[int(round(x * (1 << sub))), int(round(y * (1 << sub)))] for x, y in pts], dtype=np.int32)

    if shape == "circle":
        cv2.circle(img, centre, int(r * (1 << sub)), colour, -1, cv2.LINE_AA, sub)
    elif shape == "ring":
        thickness = max(1, int(round(r * 0.35)))
        cv2.circle(img, centre, int((r - thickness / 2) * (1 << sub)), colour, thickness, cv2.LINE_AA, sub)
    elif shape == "square":
        cv2.fillPoly(img, [poly(4, r * 1.15)], colour, cv2.LINE_AA, sub)
    elif shape == "triangle":
        cv2.fillPoly(img, [poly(3, r * 1.2)], colour, cv2.LINE_AA, sub)
    elif shape == "cross":
        w = max(1, int(round(r * 0.45)))
        for a in (angle, angle + math.pi / 2):
            p1 = (int(round((cx - r * math.cos(a)) * (1 << sub))), int(round((cy - r * math.sin(a)) * (1 << sub))))
            p2 = (int(round((cx + r * math.cos(a)) * (1 << sub))), int(round((cy + r * math.sin(a)) * (1 << sub))))
            cv2.line(img, p1, p2, colour, w, cv2.LINE_AA, sub)
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(shape)
    return img
