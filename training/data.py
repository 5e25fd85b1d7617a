"""Labelled image data: the in-memory ``Dataset`` and the loaders for every source ``edgefleet train --data`` takes.

Loading never raises on a bad *file*: unreadable images are recorded in the ``LoadReport`` (file + reason), and
images whose size or channel count differs from the rest are converted and recorded, so the cleaning step can list
every file and what happened to it. It raises ``DataError`` only when the *source* is unusable (no such folder, a
malformed CSV, no readable image at all).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.errors import DataError
from training.preprocess import resize_image
from training.synthetic import SHAPES, make_shapes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


@dataclass
class Dataset:
    """Images (N, H, W, C) uint8 with C=1 (grayscale) or C=3 (RGB order), integer labels and a stable id each."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    ids: list[str]
    source: str = ""

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(f"images must be (N, H, W, C) uint8, got {self.images.shape} {self.images.dtype}")
        if not (len(self.images) == len(self.labels) == len(self.ids)):
            raise DataError("images, labels and ids must have the same length")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise DataError(f"labels must lie in 0..{len(self.class_names) - 1} (one per class name)")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def image_shape(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def subset(self, indices: Any) -> "Dataset":
        """A new Dataset with the samples at ``indices`` (class names kept, so labels stay comparable)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return Dataset(self.images[idx], self.labels[idx], list(self.class_names), [self.ids[i] for i in idx],
                       self.source)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(counts[i]) for i, name in enumerate(self.class_names)}

    def fingerprint(self) -> str:
        """sha256 over pixels, shape, labels and class names: the training-data lineage written to the manifest."""
        h = hashlib.sha256()
        h.update(repr(self.images.shape).encode())
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.astype("<i8").tobytes())
        h.update("\x1f".join(self.class_names).encode())
        return h.hexdigest()


@dataclass
class FileIssue:
    file: str
    reason: str


@dataclass
class LoadReport:
    """What loading saw: files tried, files that could not be read, and files converted to the common format."""

    source: str
    files_seen: int = 0
    unreadable: list[FileIssue] = field(default_factory=list)
    resized: list[FileIssue] = field(default_factory=list)
    converted: list[FileIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "files_seen": self.files_seen, "notes": list(self.notes),
            "unreadable": [vars(i) for i in self.unreadable], "resized": [vars(i) for i in self.resized],
            "converted": [vars(i) for i in self.converted],
        }


def load_dataset(spec: str, *, image_size: int | None = None, seed: int = 0) -> tuple[Dataset, LoadReport]:
    """Load ``digits``, ``synthetic`` (or ``synthetic:N`` samples), a folder of class sub-folders, or a CSV file.

    ``image_size`` resizes every image to a square of that size. Without it, images whose size differs from the
    most common size are resized to it (and recorded as wrong size).
    """
    if spec == "digits":
        return _load_digits(image_size)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        n = 600
        if ":" in spec:
            try:
                n = int(spec.split(":", 1)[1])
            except ValueError as exc:
                raise DataError(f"synthetic:N needs an integer sample count, got {spec!r}") from exc
        images, labels = make_shapes(n, image_size=image_size or 32, seed=seed)
        ids = [f"synthetic/{seed}/{i:05d}" for i in range(len(labels))]
        ds = Dataset(images, labels, list(SHAPES), ids, f"synthetic:{n}")
        return ds, LoadReport(source=ds.source, files_seen=len(ds),
                              notes=["synthetic shapes: for smoke tests and demos, not a measure of real accuracy"])
    path = Path(spec)
    if path.is_dir():
        return _load_folder(path, image_size)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _load_csv(path, image_size)
    if path.exists():
        raise DataError(f"{spec}: not a folder of class sub-folders nor a .csv file")
    raise DataError(f"{spec}: no such data source (use digits, synthetic, a folder or a CSV of path,label)")


def _load_digits(image_size: int | None) -> tuple[Dataset, LoadReport]:
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = np.clip(np.rint(raw.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, :, :, None]
    report = LoadReport(source="digits", files_seen=len(images))
    if image_size and image_size != 8:
        images = np.stack([resize_image(im, image_size, image_size) for im in images])
        report.notes.append(f"all images resized from 8x8 to {image_size}x{image_size} as requested")
    ids = [f"digits/{i:04d}" for i in range(len(images))]
    names = [str(n) for n in raw.target_names]
    return Dataset(images, raw.target.astype(np.int64), names, ids, "digits"), report


def read_image(path: Path) -> tuple[np.ndarray | None, str]:
    """Decode one file to HxWxC uint8 (C=1 gray, C=3 RGB). Returns (None, reason) instead of raising."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
    if data.size == 0:
        return None, "empty file"
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        img = _decode_with_pillow(path)
        if img is None:
            return None, "not a decodable image (OpenCV and Pillow both failed)"
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3) or min(img.shape[:2]) < 1:
        return None, f"unsupported image layout {img.shape}"
    return img, ""


def _decode_with_pillow(path: Path) -> np.ndarray | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("L") if im.mode in ("1", "L", "I", "I;16", "F") else im.convert("RGB")
            return np.asarray(im, dtype=np.uint8)
    except Exception:  # noqa: BLE001 - any decoder failure means "unreadable", reported by the caller
        return None


def _load_folder(root: Path, image_size: int | None) -> tuple[Dataset, LoadReport]:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders (expected {root}/<class>/<image files>)")
    entries = [(f, d.name) for d in class_dirs for f in sorted(d.rglob("*"))
               if f.is_file() and not f.name.startswith(".")]
    return _assemble(entries, [d.name for d in class_dirs], str(root), image_size)


def _load_csv(path: Path, image_size: int | None) -> tuple[Dataset, LoadReport]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    bad = [i for i, r in enumerate(rows, 1) if len(r) < 2 or not r[0].strip() or not r[1].strip()]
    if bad:
        raise DataError(f"{path}: rows {bad[:10]} do not have the form path,label")
    if not rows:
        raise DataError(f"{path}: no rows")
    entries = [((path.parent / r[0].strip()), r[1].strip()) for r in rows]
    names = sorted({label for _, label in entries})
    return _assemble(entries, names, str(path), image_size)


def _assemble(entries: list[tuple[Path, str]], class_names: list[str], source: str,
              image_size: int | None) -> tuple[Dataset, LoadReport]:
    report = LoadReport(source=source, files_seen=len(entries))
    with _quiet_opencv():  # decoder errors go into the report, not as log spam on stderr
        decoded = _decode_all(entries, report)
    if not decoded:
        raise DataError(f"{source}: no readable images ({len(report.unreadable)} unreadable)")
    channels = _common_channels([img for _, _, img in decoded])
    sizes = Counter(img.shape[:2] for _, _, img in decoded)
    common_hw = sizes.most_common(1)[0][0]
    target = (image_size, image_size) if image_size else common_hw
    if image_size and target != common_hw:
        report.notes.append(f"images resized from the common size {common_hw[0]}x{common_hw[1]} "
                            f"to {image_size}x{image_size} as requested")
    images = []
    for file, _, img in decoded:
        if img.shape[2] != channels:
            report.converted.append(FileIssue(file, f"{img.shape[2]} channel(s), converted to {channels}"))
            img = (cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None] if channels == 1
                   else np.repeat(img, 3, axis=2))
        if img.shape[:2] != common_hw:
            report.resized.append(FileIssue(file, f"size {img.shape[0]}x{img.shape[1]} differs from the common "
                                                  f"{common_hw[0]}x{common_hw[1]}, resized to {target[0]}x{target[1]}"))
        images.append(resize_image(img, *target))
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[label] for _, label, _ in decoded], dtype=np.int64)
    ds = Dataset(np.stack(images).astype(np.uint8), labels, list(class_names), [f for f, _, _ in decoded], source)
    return ds, report


def _decode_all(entries: list[tuple[Path, str]], report: LoadReport) -> list[tuple[str, str, np.ndarray]]:
    decoded = []
    for file, label in entries:
        if not file.exists():
            report.unreadable.append(FileIssue(str(file), "file not found"))
            continue
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            report.unreadable.append(FileIssue(str(file), f"not an image file type ({file.suffix or 'no suffix'})"))
            continue
        img, reason = read_image(file)
        if img is None:
            report.unreadable.append(FileIssue(str(file), reason))
        else:
            decoded.append((str(file), label, img))
    return decoded


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    old = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(old)


def _common_channels(images: list[np.ndarray]) -> int:
    counts = Counter(img.shape[2] for img in images)
    return 1 if counts.get(1, 0) > counts.get(3, 0) else 3


def export_folder(dataset: Dataset, root: Path, *, suffix: str = ".png") -> list[Path]:
    """Write ``dataset`` as ``root/<class>/<nnnnn>.png`` (a folder ``load_dataset`` reads back); returns the files."""
    root = Path(root)
    files = []
    for i, (img, label) in enumerate(zip(dataset.images, dataset.labels)):
        d = root / dataset.class_names[int(label)]
        d.mkdir(parents=True, exist_ok=True)
        f = d / f"{i:05d}{suffix}"
        bgr = img if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(f), bgr):
            raise DataError(f"could not write {f}")
        files.append(f)
    return files


__all__ = ["Dataset", "FileIssue", "LoadReport", "load_dataset", "read_image", "export_folder", "SHAPES"]
