from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from training.data import Dataset, export_folder, load_dataset
from training.errors import DataError
from training.synthetic import SHAPES


def test_digits_are_the_real_bundled_8x8_images_scaled_to_uint8(digits: Dataset) -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    assert digits.images.shape == (1797, 8, 8, 1) and digits.images.dtype == np.uint8
    assert digits.class_names == [str(i) for i in range(10)]
    assert np.array_equal(digits.labels, raw.target)
    assert digits.images.max() == 255 and digits.images.min() == 0
    assert np.allclose(digits.images[:, :, :, 0] / 255.0 * 16.0, raw.images, atol=16 / 255)
    assert len(set(digits.ids)) == len(digits)


def test_digits_resized_on_request_and_the_report_says_so() -> None:
    ds, report = load_dataset("digits", image_size=16)
    assert ds.images.shape[1:] == (16, 16, 1)
    assert any("16x16" in n for n in report.notes)


def test_synthetic_is_deterministic_per_seed_balanced_and_rgb() -> None:
    a, _ = load_dataset("synthetic:100", seed=3)
    b, _ = load_dataset("synthetic:100", seed=3)
    c, _ = load_dataset("synthetic:100", seed=4)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.images.shape == (100, 32, 32, 3)
    assert a.class_names == list(SHAPES)
    assert set(np.bincount(a.labels)) == {100 // len(SHAPES)}


def test_unknown_source_and_empty_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such data source"):
        load_dataset(str(tmp_path / "missing"))
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(str(tmp_path))
    with pytest.raises(DataError, match="integer"):
        load_dataset("synthetic:many")


def test_folder_import_reads_back_exported_pixels_and_folder_labels(tmp_path: Path, small_digits: Dataset) -> None:
    export_folder(small_digits, tmp_path / "d")
    ds, report = load_dataset(str(tmp_path / "d"))
    assert report.unreadable == [] and report.files_seen == len(small_digits)
    assert len(ds) == len(small_digits)
    assert np.array_equal(np.bincount(ds.labels), np.bincount(small_digits.labels))
    # PNG is lossless: the same multiset of (image, label) pairs comes back
    original = sorted((im.tobytes(), int(lbl)) for im, lbl in zip(small_digits.images, small_digits.labels))
    loaded = sorted((im.tobytes(), int(lbl)) for im, lbl in zip(ds.images, ds.labels))
    assert original == loaded
    assert all(Path(i).parent.name == ds.class_names[int(lbl)] for i, lbl in zip(ds.ids, ds.labels))


def test_unreadable_files_are_recorded_not_raised(tmp_path: Path, small_digits: Dataset) -> None:
    export_folder(small_digits, tmp_path / "d")
    (tmp_path / "d" / "3" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (tmp_path / "d" / "3" / "empty.jpg").write_bytes(b"")
    (tmp_path / "d" / "4" / "notes.txt").write_text("not an image")
    ds, report = load_dataset(str(tmp_path / "d"))
    reasons = {Path(i.file).name: i.reason for i in report.unreadable}
    assert set(reasons) == {"corrupt.png", "empty.jpg", "notes.txt"}
    assert "empty" in reasons["empty.jpg"] and "not an image file type" in reasons["notes.txt"]
    assert len(ds) == len(small_digits) and report.files_seen == len(small_digits) + 3


def test_wrong_size_and_wrong_channels_are_converted_and_recorded(tmp_path: Path, small_digits: Dataset) -> None:
    export_folder(small_digits, tmp_path / "d")
    cv2.imwrite(str(tmp_path / "d" / "1" / "big.png"), np.full((20, 20), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "d" / "2" / "colour.png"), np.full((8, 8, 3), (0, 0, 255), np.uint8))
    ds, report = load_dataset(str(tmp_path / "d"))
    assert ds.images.shape[1:] == (8, 8, 1)
    assert [Path(i.file).name for i in report.resized] == ["big.png"]
    assert [Path(i.file).name for i in report.converted] == ["colour.png"]
    red = ds.images[ds.ids.index(str(tmp_path / "d" / "2" / "colour.png"))]
    assert int(red.mean()) == int(round(0.299 * 255))  # BGR red read as RGB, then to gray


def test_csv_import_with_relative_paths_and_missing_files(tmp_path: Path, small_digits: Dataset) -> None:
    files = export_folder(small_digits.subset(range(20)), tmp_path / "imgs")
    lines = ["path,label"] + [f"imgs/{f.parent.name}/{f.name},digit_{f.parent.name}" for f in files]
    lines.append("imgs/nowhere.png,digit_0")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    ds, report = load_dataset(str(tmp_path / "labels.csv"))
    assert len(ds) == 20
    assert [(Path(i.file).name, i.reason) for i in report.unreadable] == [("nowhere.png", "file not found")]
    assert all(n.startswith("digit_") for n in ds.class_names)
    assert [ds.class_names[int(x)] for x in ds.labels] == [f"digit_{f.parent.name}" for f in files]


def test_malformed_csv_row_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a.png,cat\njust-a-path\n")
    with pytest.raises(DataError, match="rows \\[2\\]"):
        load_dataset(str(tmp_path / "bad.csv"))


def test_fingerprint_tracks_pixels_labels_and_names(small_digits: Dataset) -> None:
    base = small_digits.fingerprint()
    relabelled = small_digits.subset(range(len(small_digits)))
    relabelled.labels[0] = (relabelled.labels[0] + 1) % 10
    renamed = small_digits.subset(range(len(small_digits)))
    renamed.class_names[0] = "zero"
    assert len({base, relabelled.fingerprint(), renamed.fingerprint()}) == 3
    assert small_digits.subset(range(len(small_digits))).fingerprint() == base


def test_subset_keeps_class_names_and_ids(small_digits: Dataset) -> None:
    sub = small_digits.subset([5, 1])
    assert sub.ids == [small_digits.ids[5], small_digits.ids[1]]
    assert sub.class_names == small_digits.class_names and len(sub) == 2


def test_inconsistent_arrays_are_rejected_when_a_dataset_is_built() -> None:
    images = np.zeros((2, 8, 8, 1), np.uint8)
    with pytest.raises(DataError, match="labels must lie"):
        Dataset(images, np.array([0, 2]), ["a", "b"], ["x", "y"])
    with pytest.raises(DataError, match="same length"):
        Dataset(images, np.array([0]), ["a", "b"], ["x", "y"])
    with pytest.raises(DataError, match="uint8"):
        Dataset(images.astype(np.float32), np.array([0, 1]), ["a", "b"], ["x", "y"])
