"""Data cleaning with a written report: nothing is dropped silently.

Policy (each file gets one record with its findings and the action taken):

- unreadable / corrupt files (from the load report): dropped;
- wrong size or channel count (converted while loading): kept, reported;
- exact duplicates (same pixels) with the same label: the first is kept, the copies dropped;
- exact duplicates with conflicting labels: copies the mislabel model calls wrong are dropped; if it cannot tell,
  every copy is dropped (there is no way to know the right label);
- near duplicates (perceptual hash within ``near_dup_distance`` bits): kept, but grouped, and ``report.groups``
  makes the split keep each group on one side so no copy crosses train/test;
- classes with fewer than ``min_per_class`` examples: dropped;
- suspected mislabels (cross-validated confidence, see ``training.mislabel``): reported, dropped only with
  ``drop_mislabeled=True``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.data import Dataset, LoadReport
from training.dedup import UnionFind, near_pairs, phashes, pixel_sha256
from training.mislabel import find_suspects, out_of_fold_proba

KINDS = ("unreadable", "wrong_size", "wrong_channels", "exact_duplicate", "conflicting_duplicate", "near_duplicate",
         "near_duplicate_conflicting_label", "rare_class", "suspected_mislabel")


@dataclass
class FileRecord:
    id: str
    label: str | None
    findings: list[dict[str, str]] = field(default_factory=list)
    action: str = "kept"
    reason: str = ""
    group: str | None = None

    def add(self, kind: str, detail: str) -> None:
        self.findings.append({"kind": kind, "detail": detail})

    def drop(self, reason: str) -> None:
        if self.action != "dropped":
            self.action, self.reason = "dropped", reason


@dataclass
class CleaningReport:
    source: str
    records: list[FileRecord]
    groups: np.ndarray  # one group id per sample of the cleaned dataset, for split(groups=...)
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def total_in(self) -> int:
        return len(self.records)

    @property
    def kept(self) -> list[FileRecord]:
        return [r for r in self.records if r.action == "kept"]

    @property
    def dropped(self) -> list[FileRecord]:
        return [r for r in self.records if r.action == "dropped"]

    def with_finding(self, kind: str) -> list[FileRecord]:
        return [r for r in self.records if any(f["kind"] == kind for f in r.findings)]

    def counts(self) -> dict[str, int]:
        out = {"in": self.total_in, "kept": len(self.kept), "dropped": len(self.dropped)}
        out.update({k: len(self.with_finding(k)) for k in KINDS})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "settings": self.settings, "counts": self.counts(), "notes": self.notes,
                "files": [vars(r) for r in self.records]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        c = self.counts()
        lines = [f"# Data cleaning report: {self.source}", "",
                 f"{c['in']} files in, {c['kept']} kept, {c['dropped']} dropped.", "", "| finding | files |",
                 "|---|---|"]
        lines += [f"| {k.replace('_', ' ')} | {c[k]} |" for k in KINDS]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        lines += ["", "## Settings", ""] + [f"- {k}: {v}" for k, v in self.settings.items()]
        flagged = [r for r in self.records if r.findings or r.action != "kept"]
        lines += ["", "## Files with findings", "", "| file | label | action | findings |", "|---|---|---|---|"]
        for r in flagged:
            text = "; ".join(f"{f['kind']}: {f['detail']}" for f in r.findings).replace("|", "\\|")
            action = r.action + (f" ({r.reason})" if r.reason else "")
            lines.append(f"| {r.id} | {r.label or ''} | {action} | {text} |")
        lines += ["", f"The other {c['in'] - len(flagged)} files had no findings and were kept."]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> dict[str, Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md, js = out_dir / "cleaning_report.md", out_dir / "cleaning_report.json"
        md.write_text(self.to_markdown())
        js.write_text(self.to_json())
        return {"markdown": md, "json": js}


def clean(dataset: Dataset, load_report: LoadReport | None = None, *, min_per_class: int = 5,
          near_dup_distance: int = 4, mislabel_threshold: float = 0.2, drop_mislabeled: bool = False,
          check_mislabels: bool = True, min_judge_accuracy: float = 0.85, seed: int = 0) -> tuple[Dataset,
                                                                                                  CleaningReport]:
    """Apply the policy above; return the cleaned dataset and a report whose ``groups`` align with it."""
    names = dataset.class_names
    recs = [FileRecord(i, names[int(lbl)]) for i, lbl in zip(dataset.ids, dataset.labels)]
    notes: list[str] = []
    if load_report is not None:
        _from_load_report(recs, load_report, notes)
    alive = np.ones(len(dataset), dtype=bool)
    conflicts = _exact_duplicates(dataset, recs, alive)
    group_of = _near_duplicates(dataset, recs, alive, near_dup_distance)
    # classes too small to learn from (checked before the mislabel model, which needs a few of each)
    _drop_rare(dataset, recs, alive, min_per_class)
    suspects: set[int] = set()
    if check_mislabels:
        suspects = _mislabels(dataset, alive, group_of, recs, mislabel_threshold, min_judge_accuracy, seed, notes)
    _settle_conflicts(dataset, recs, alive, conflicts, suspects)
    if drop_mislabeled:
        _drop_suspects(recs, alive, suspects)
    _drop_rare(dataset, recs, alive, min_per_class)  # conflict drops can push a class under the minimum

    kept_idx = np.flatnonzero(alive)
    _name_groups(dataset, recs, group_of)
    settings = {"min_per_class": min_per_class, "near_dup_distance": near_dup_distance,
                "mislabel_threshold": mislabel_threshold, "drop_mislabeled": drop_mislabeled,
                "check_mislabels": check_mislabels, "seed": seed}
    report = CleaningReport(dataset.source, recs + _unreadable_records(load_report), group_of[kept_idx], settings,
                            notes)
    return _without_empty_classes(dataset.subset(kept_idx), notes), report


def _exact_duplicates(dataset: Dataset, recs: list[FileRecord], alive: np.ndarray) -> list[list[int]]:
    """Drop same-label copies of the same pixels; return the sets of copies whose labels conflict, which wait for
    the mislabel model's opinion."""
    names = dataset.class_names
    by_hash: dict[str, list[int]] = {}
    for i, img in enumerate(dataset.images):
        by_hash.setdefault(pixel_sha256(img), []).append(i)
    conflicts: list[list[int]] = []
    for members in by_hash.values():
        if len(members) < 2:
            continue
        if len({int(dataset.labels[i]) for i in members}) == 1:
            first = members[0]
            for i in members[1:]:
                recs[i].add("exact_duplicate", f"same pixels as {dataset.ids[first]}")
                recs[i].drop("exact duplicate")
                alive[i] = False
        else:
            conflicts.append(members)
            for i in members:
                others = ", ".join(f"{dataset.ids[j]} ({names[int(dataset.labels[j])]})" for j in members if j != i)
                recs[i].add("conflicting_duplicate", f"same pixels as {others}")
    return conflicts


def _near_duplicates(dataset: Dataset, recs: list[FileRecord], alive: np.ndarray, distance: int) -> np.ndarray:
    """Report near copies among the live images and return one group id per image (its union-find root)."""
    names = dataset.class_names
    n = len(dataset)
    uf = UnionFind(n)
    hashes = phashes(dataset.images)
    live = np.flatnonzero(alive)
    for a, b, dist in near_pairs(hashes[live], distance):
        i, j = int(live[a]), int(live[b])
        uf.union(i, j)
        if dist > 0 or int(dataset.labels[i]) == int(dataset.labels[j]):
            for x, y in ((i, j), (j, i)):
                recs[x].add("near_duplicate", f"{dataset.ids[y]} at perceptual-hash distance {dist}")
        if int(dataset.labels[i]) != int(dataset.labels[j]) and dist > 0:
            for x, y in ((i, j), (j, i)):
                recs[x].add("near_duplicate_conflicting_label",
                            f"near copy {dataset.ids[y]} is labelled {names[int(dataset.labels[y])]}")
    return np.array([uf.find(i) for i in range(n)])


def _settle_conflicts(dataset: Dataset, recs: list[FileRecord], alive: np.ndarray, conflicts: list[list[int]],
                      suspects: set[int]) -> None:
    """Copies with conflicting labels: keep one copy when the mislabel model trusts a single label among them,
    else drop them all (there is no way to know the right label)."""
    for members in conflicts:
        live_members = [i for i in members if alive[i]]
        trusted = [i for i in live_members if i not in suspects]
        if trusted and len({int(dataset.labels[i]) for i in trusted}) == 1:
            for i in live_members:
                if i in suspects:
                    recs[i].drop("duplicate with a conflicting label; the model favours the other copy's label")
                elif i != trusted[0]:
                    recs[i].add("exact_duplicate", f"same pixels as {dataset.ids[trusted[0]]}")
                    recs[i].drop("exact duplicate")
                if recs[i].action == "dropped":
                    alive[i] = False
        else:
            for i in live_members:
                recs[i].drop("duplicate with conflicting labels; cannot tell which is right")
                alive[i] = False


def _drop_suspects(recs: list[FileRecord], alive: np.ndarray, suspects: set[int]) -> None:
    for i in suspects:
        if alive[i]:
            recs[i].drop("suspected mislabel (drop_mislabeled=True)")
            alive[i] = False


def _name_groups(dataset: Dataset, recs: list[FileRecord], group_of: np.ndarray) -> None:
    """Name each near-duplicate group after its root image, so the report says which files travel together."""
    for i in range(len(dataset)):
        recs[i].group = dataset.ids[group_of[i]] if (group_of == group_of[i]).sum() > 1 else None


def _without_empty_classes(ds: Dataset, notes: list[str]) -> Dataset:
    """Remove classes left without examples from ``class_names`` (so the model gets no dead outputs)."""
    counts = np.bincount(ds.labels, minlength=ds.num_classes)
    if counts.all():
        return ds
    keep = np.flatnonzero(counts)
    for c in np.flatnonzero(counts == 0):
        notes.append(f"class {ds.class_names[c]} removed from the label list: no examples left")
    remap = np.full(ds.num_classes, -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    return Dataset(ds.images, remap[ds.labels], [ds.class_names[c] for c in keep], ds.ids, ds.source)


def _from_load_report(recs: list[FileRecord], load_report: LoadReport, notes: list[str]) -> None:
    by_id = {r.id: r for r in recs}
    for issue in load_report.resized:
        if issue.file in by_id:
            by_id[issue.file].add("wrong_size", issue.reason)
    for issue in load_report.converted:
        if issue.file in by_id:
            by_id[issue.file].add("wrong_channels", issue.reason)
    notes.extend(load_report.notes)


def _unreadable_records(load_report: LoadReport | None) -> list[FileRecord]:
    out = []
    for issue in load_report.unreadable if load_report else []:
        rec = FileRecord(issue.file, None)
        rec.add("unreadable", issue.reason)
        rec.drop("unreadable or corrupt")
        out.append(rec)
    return out


def _drop_rare(dataset: Dataset, recs: list[FileRecord], alive: np.ndarray, min_per_class: int) -> None:
    counts = np.bincount(dataset.labels[alive], minlength=dataset.num_classes)
    for c in np.flatnonzero(counts < min_per_class):
        for i in np.flatnonzero(alive & (dataset.labels == c)):
            recs[i].add("rare_class", f"class {dataset.class_names[c]} has {counts[c]} usable examples "
                                      f"(minimum {min_per_class})")
            recs[i].drop("class with too few examples")
            alive[i] = False


def _mislabels(dataset: Dataset, alive: np.ndarray, group_of: np.ndarray, recs: list[FileRecord], threshold: float,
               min_judge_accuracy: float, seed: int, notes: list[str]) -> set[int]:
    idx = np.flatnonzero(alive)
    labels = dataset.labels[idx]
    present = np.unique(labels)
    if len(present) < 2 or np.bincount(labels)[present].min() < 2:
        notes.append("mislabel check skipped: needs at least two classes with two examples each")
        return set()
    folds = int(min(5, np.bincount(labels)[present].min()))
    proba = out_of_fold_proba(dataset.images[idx], labels, dataset.num_classes, groups=group_of[idx], folds=folds,
                              seed=seed)
    judge_acc = float((proba.argmax(1) == labels).mean())
    if judge_acc < min_judge_accuracy:
        notes.append(f"mislabel check skipped: the quick pixel model reached only {judge_acc:.1%} out-of-fold "
                     f"accuracy (< {min_judge_accuracy:.0%}), too weak to judge labels")
        return set()
    notes.append(f"mislabel check: logistic regression, {folds}-fold out-of-fold accuracy {judge_acc:.1%}")
    out = set()
    for s in find_suspects(proba, labels, threshold=threshold):
        i = int(idx[s.index])
        recs[i].add("suspected_mislabel", f"labelled {dataset.class_names[s.given]} (p={s.p_given:.2f}) but looks "
                                          f"like {dataset.class_names[s.predicted]} (p={s.p_predicted:.2f})")
        out.add(i)
    return out
