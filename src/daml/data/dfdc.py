"""Reader of the DFDC layout.

Description:
    Training parts `dfdc_train_part_N/` each hold videos and a `metadata.json`
    `{"x.mp4": {"label": "REAL" | "FAKE", "split": "train", "original": "y.mp4"}}`
    (`original` only for fakes). The test set is `test/` with `test/labels.csv`
    (`filename,label`, 1 = fake). Training parts go to train; validation is carved out of
    them by original video, so a real video and its fakes stay on one side. A fake's
    target_id is its original's stem; the identity that lent the face is not published, so
    source_id stays empty (as does target_id for test fakes, whose original is not given).

References:
    The DeepFake Detection Challenge dataset (Dolhansky et al., 2020) and its Kaggle data
    description; docs/datasets.md.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from daml.data.manifest import Problems

log = logging.getLogger(__name__)

PART_PATTERN = "dfdc_train_part_*"
TEST_FOLDER = "test"
TEST_LABELS = "labels.csv"
EXPECTED_FOLDERS = (PART_PATTERN, TEST_FOLDER)
METADATA_LABELS = {"REAL": 0, "FAKE": 1}
CSV_LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}
TECHNIQUES = {0: "real", 1: "dfdc-fake"}


def read_dfdc(root: Path, problems: Problems) -> list[dict]:
    """Index a DFDC root.

    Arguments:
        root: the folder holding `dfdc_train_part_N/` folders and `test/`.
        problems: collector of inconsistencies (metadata.json absent, not valid JSON or an
            entry without `label`; labels not in the allowed values; label files naming
            absent videos; videos no label file names; a video name used twice).

    Returns:
        one row dict per video (see `daml.data.manifest.read_dataset`).
    """
    rows = []
    parts = sorted(p for p in root.glob(PART_PATTERN) if p.is_dir())
    if not parts:
        problems.add(root / PART_PATTERN, "no training part folder: no train videos indexed")
    for part in tqdm(parts, desc="dfdc parts", unit="part", disable=None):
        rows += _read_part(part, problems)
    rows += _read_test(root / TEST_FOLDER, problems)

    # a name is one video across the whole layout: a second copy is ambiguous (label, split)
    seen: dict[str, str] = {}
    for row in rows:
        seen.setdefault(row["video"], row["path"])
    clashes = {}
    for row in rows:
        if seen[row["video"]] != row["path"]:
            clashes.setdefault(row["video"], [seen[row["video"]]]).append(row["path"])
    for video, paths in sorted(clashes.items()):
        for path in paths:
            others = ", ".join(p for p in paths if p != path)
            problems.add(
                path,
                f"video name {video} used more than once (also {others}); " f"all copies left out",
            )
    return [row for row in rows if row["video"] not in clashes]


def _read_part(part: Path, problems: Problems) -> list[dict]:
    path = part / "metadata.json"
    if not path.is_file():
        problems.add(path, "metadata.json absent: the part's videos are not indexed")
        return []
    try:
        metadata = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problems.add(path, f"not valid JSON ({error}): the part's videos are not indexed")
        return []
    if not isinstance(metadata, dict):
        problems.add(path, "not a JSON object {file: {label, ...}}: part not indexed")
        return []
    on_disk = {p.name for p in part.glob("*.mp4")}
    rows = []
    for name, entry in sorted(metadata.items()):
        video_path = part / name
        if not isinstance(entry, dict) or "label" not in entry:
            problems.add(video_path, f"entry in {path} lacks 'label'")
            continue
        label = METADATA_LABELS.get(entry["label"])
        if label is None:
            problems.add(
                video_path,
                f"label {entry['label']!r} in {path} not in " f"{sorted(METADATA_LABELS)}",
            )
            continue
        if name not in on_disk:
            problems.add(video_path, f"named by {path} but absent")
            continue
        stem = Path(name).stem
        original = entry.get("original") if label else None
        target = Path(str(original)).stem if original else stem
        rows.append(
            dict(
                technique=TECHNIQUES[label],
                video=stem,
                split="train",
                label=label,
                path=str(video_path),
                target_id=target,
                source_id="",
                group=target,
            )
        )
    for name in sorted(on_disk - set(metadata)):
        problems.add(part / name, f"video on disk but not in {path}; left out")
    return rows


def _read_test(folder: Path, problems: Problems) -> list[dict]:
    path = folder / TEST_LABELS
    if not path.is_file():
        problems.add(path, "test labels absent: no test videos indexed")
        return []
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            entries = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        problems.add(path, f"not a readable CSV ({error}): no test videos indexed")
        return []
    if not {"filename", "label"} <= set(fields):
        problems.add(path, f"columns {fields} lack filename,label: no test videos indexed")
        return []
    on_disk = {p.name for p in folder.glob("*.mp4")}
    listed, twice = set(), set()
    rows = []
    for number, entry in enumerate(entries, start=2):
        name = (entry["filename"] or "").strip()
        video_path = folder / name
        label = CSV_LABELS.get((entry["label"] or "").strip())
        if label is None:
            problems.add(
                video_path,
                f"{path} line {number}: label {entry['label']!r} not in " f"{{0, 1}} (1 = fake)",
            )
            continue
        if name not in on_disk:
            problems.add(video_path, f"named by {path} line {number} but absent")
            continue
        if name in listed:
            problems.add(
                video_path,
                f"named twice in {path} (again at line {number}); " f"all copies left out",
            )
            twice.add(name)
            continue
        listed.add(name)
        stem = Path(name).stem
        rows.append(
            dict(
                technique=TECHNIQUES[label],
                video=stem,
                split="test",
                label=label,
                path=str(video_path),
                target_id="" if label else stem,
                source_id="",
                group=stem,
            )
        )
    for name in sorted(on_disk - {(e["filename"] or "").strip() for e in entries}):
        problems.add(folder / name, f"video on disk but not in {path}; left out")
    return [row for row in rows if Path(row["path"]).name not in twice]
