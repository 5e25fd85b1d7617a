"""Duplicate detection: exact (sha256 of the pixels) and near (a DCT perceptual hash, written here with OpenCV).

The perceptual hash follows the classic pHash recipe: grayscale, resize to 32x32, 2-D DCT, keep the 8x8 lowest
frequencies, and set one bit per coefficient above their median (the DC term excluded from the median). Small edits
(noise, brightness, JPEG re-encoding, a slight blur or shift) move few bits, so images within a small Hamming
distance are treated as copies of one another.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np


def pixel_sha256(image: np.ndarray) -> str:
    h = hashlib.sha256(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def phash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash of one HxWxC uint8 image."""
    gray = image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    shrink = min(gray.shape) > 32
    small = cv2.resize(gray.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


def phashes(images: np.ndarray) -> np.ndarray:
    return np.array([phash(im) for im in images], dtype=np.uint64)


def near_pairs(hashes: np.ndarray, max_distance: int, *, chunk: int = 2048) -> list[tuple[int, int, int]]:
    """All pairs (i, j, distance) with i < j and Hamming distance <= ``max_distance``, computed in row chunks."""
    pairs: list[tuple[int, int, int]] = []
    n = len(hashes)
    for start in range(0, n, chunk):
        block = hashes[start:start + chunk]
        dist = np.bitwise_count(block[:, None] ^ hashes[None, :])
        rows, cols = np.nonzero(dist <= max_distance)
        for r, c in zip(rows.tolist(), cols.tolist()):
            i = start + r
            if i < c:
                pairs.append((i, c, int(dist[r, c])))
    return pairs


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the earliest sample names the group
