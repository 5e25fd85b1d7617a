from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.cleaning import CleaningReport, clean
from training.data import Dataset, load_dataset
from training.split import split


def _record(report: CleaningReport, name: str):  # noqa: ANN202
    matches = [r for r in report.records if r.id.endswith(name)]
    assert len(matches) == 1, name
    return matches[0]


def _kinds(rec) -> set[str]:  # noqa: ANN001
    return {f["kind"] for f in rec.findings}


@pytest.fixture()
def planted(digits_folder: tuple[Path, list[Path]]) -> Path:
    """The digits folder with a corrupt file, an exact duplicate, a near duplicate and mislabels planted."""
    root, files = digits_folder
    threes = [f for f in files if f.parent.name == "3"]
    shutil.copy(threes[0], root / "8" / "planted_copy_of_3.png")  # conflicting exact duplicate + mislabel
    shutil.move(threes[1], root / "5" / "planted_moved_3.png")  # pure mislabel, only the model can tell
    (root / "5" / "planted_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    zero = [f for f in files if f.parent.name == "0"][3]
    shutil.copy(zero, root / "0" / "planted_exact_dup.png")
    seven = [f for f in files if f.parent.name == "7"][4]
    img = cv2.imread(str(seven), cv2.IMREAD_GRAYSCALE).astype(np.int16)
    img[3, 4] = np.clip(img[3, 4] + 40, 0, 255)  # a slightly altered copy
    cv2.imwrite(str(root / "7" / "planted_near_dup.png"), img.astype(np.uint8))
    (root / "4" / "planted_wrong_size.png").write_bytes(cv2.imencode(".png", np.zeros((12, 10), np.uint8))[1])
    return root


def test_report_catches_every_planted_problem_and_says_what_happened(planted: Path) -> None:
    ds, load_report = load_dataset(str(planted))
    cleaned, report = clean(ds, load_report, seed=0)

    corrupt = _record(report, "planted_corrupt.png")
    assert _kinds(corrupt) == {"unreadable"} and corrupt.action == "dropped"

    dup = _record(report, "planted_exact_dup.png")
    assert "exact_duplicate" in _kinds(dup) and dup.action == "dropped"

    near = _record(report, "planted_near_dup.png")
    assert "near_duplicate" in _kinds(near) and near.action == "kept"

    copy = _record(report, "planted_copy_of_3.png")
    assert {"conflicting_duplicate", "suspected_mislabel"} <= _kinds(copy) and copy.action == "dropped"
    original = next(r for r in report.records if "conflicting_duplicate" in _kinds(r) and r is not copy)
    assert original.label == "3" and original.action == "kept"  # the right-labelled copy survives

    moved = _record(report, "planted_moved_3.png")
    assert "suspected_mislabel" in _kinds(moved) and moved.action == "kept"  # reported, kept by default

    wrong = _record(report, "planted_wrong_size.png")
    assert "wrong_size" in _kinds(wrong) and wrong.action == "kept"

    # nothing disappears unreported: every file seen is in the report once, and in = kept + dropped
    assert report.total_in == load_report.files_seen == 1797 + 5  # five files added, one moved
    assert len({r.id for r in report.records}) == report.total_in
    assert report.total_in == len(report.kept) + len(report.dropped)
    assert len(cleaned) == len(report.kept)
    assert set(cleaned.ids) == {r.id for r in report.kept}
    assert all(r.reason for r in report.dropped)


def test_near_duplicates_share_a_group_that_the_split_keeps_on_one_side(planted: Path) -> None:
    ds, load_report = load_dataset(str(planted))
    cleaned, report = clean(ds, load_report, check_mislabels=False)
    assert len(report.groups) == len(cleaned)
    near_id = next(i for i in cleaned.ids if i.endswith("planted_near_dup.png"))
    group = report.groups[cleaned.ids.index(near_id)]
    assert (report.groups == group).sum() >= 2
    for seed in range(5):
        s = split(cleaned, seed=seed, groups=report.groups)
        sides = {name for name, idx in (("train", s.train_idx), ("val", s.val_idx), ("test", s.test_idx))
                 if (report.groups[idx] == group).any()}
        assert len(sides) == 1


def test_suspected_mislabels_are_dropped_only_on_request(planted: Path) -> None:
    ds, load_report = load_dataset(str(planted))
    _, keep_report = clean(ds, load_report)
    cleaned, drop_report = clean(ds, load_report, drop_mislabeled=True)
    suspects = {r.id for r in keep_report.with_finding("suspected_mislabel")}
    assert suspects and all(r.action == "dropped" for r in drop_report.with_finding("suspected_mislabel"))
    assert not suspects & set(cleaned.ids)
    assert drop_report.total_in == len(drop_report.kept) + len(drop_report.dropped)


def test_conflicting_duplicates_without_a_judge_are_all_dropped(small_digits: Dataset) -> None:
    imgs = np.concatenate([small_digits.images, small_digits.images[:1]])
    labels = np.concatenate([small_digits.labels, [(small_digits.labels[0] + 1) % 10]])
    ds = Dataset(imgs, labels, small_digits.class_names, small_digits.ids + ["copy"], "test")
    cleaned, report = clean(ds, check_mislabels=False)
    conflicted = report.with_finding("conflicting_duplicate")
    assert {r.id for r in conflicted} == {small_digits.ids[0], "copy"}
    assert all(r.action == "dropped" for r in conflicted)
    assert len(cleaned) == len(small_digits) - 1


def test_classes_under_the_minimum_are_dropped_and_listed(small_digits: Dataset) -> None:
    keep = np.flatnonzero(small_digits.labels != 9).tolist() + np.flatnonzero(small_digits.labels == 9)[:3].tolist()
    ds = small_digits.subset(sorted(keep))
    cleaned, report = clean(ds, min_per_class=5, check_mislabels=False)
    rare = report.with_finding("rare_class")
    assert len(rare) == 3 and all(r.label == "9" and r.action == "dropped" for r in rare)
    assert cleaned.class_names == [str(i) for i in range(9)]  # no dead output for the dropped class
    assert any("class 9 removed" in n for n in report.notes)
    assert len(cleaned) == len(report.kept) == len(ds) - 3


def test_markdown_and_json_list_each_file_with_its_action(planted: Path) -> None:
    ds, load_report = load_dataset(str(planted))
    _, report = clean(ds, load_report)
    md = report.to_markdown()
    data = json.loads(report.to_json())
    assert "planted_corrupt.png" in md and "dropped (unreadable or corrupt)" in md
    assert f"{report.total_in} files in, {len(report.kept)} kept, {len(report.dropped)} dropped" in md
    assert len(data["files"]) == report.total_in
    assert data["counts"]["in"] == data["counts"]["kept"] + data["counts"]["dropped"]
    by_id = {f["id"]: f for f in data["files"]}
    assert by_id[next(i for i in by_id if i.endswith("planted_exact_dup.png"))]["action"] == "dropped"


def test_weak_judge_skips_the_mislabel_check_with_a_note() -> None:
    ds, load_report = load_dataset("synthetic:100", seed=1)
    _, report = clean(ds, load_report, min_judge_accuracy=1.01)
    assert report.with_finding("suspected_mislabel") == []
    assert any("mislabel check skipped" in n for n in report.notes)
