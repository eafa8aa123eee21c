"""The manifest: one row per video (per frame sequence for WildDeepfake) of one dataset.

Description:
    `read_dataset` runs the reader of one layout (FF++, Celeb-DF v2, DFDC, WildDeepfake),
    fills in the columns every layout shares, carves a validation part out of the training
    videos where the layout has no official one, and drops duplicate keys. Readers check that
    files exist and that label files and metadata make sense; they never decode a video (the
    frames stage does). Each inconsistency becomes a row (path, reason) in `problems.csv`;
    `write_manifest` applies the policy `datasets.on_inconsistency`. A dataset preprocessed
    by DeepfakeBench is read from its JSON instead (`read_deepfakebench_dataset`), which also
    gives the frames table of its face crops (`FRAME_COLUMNS`).

References:
    docs/architecture.md, section "Manifest"; docs/datasets.md (dataset layouts).
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from daml.data import celebdf, deepfakebench, dfdc, ffpp, wilddeepfake
from daml.errors import DamlError
from daml.io import write_csv

log = logging.getLogger(__name__)

#: Manifest columns, in order (docs/architecture.md).
COLUMNS = [
    "key",
    "dataset",
    "technique",
    "compression",
    "video",
    "split",
    "label",
    "path",
    "member",
    "target_id",
    "source_id",
    "clip_id",
]
# what the face stage copies into every crop row: all but where the video's file lies
CARRIED_COLUMNS = [c for c in COLUMNS if c not in ("path", "member")]
PROBLEM_COLUMNS = ["path", "reason"]
#: `results/data/{dataset}/frames.csv` of a DeepfakeBench input: one row per face crop
FRAME_COLUMNS = ["key", "frame", "path", "landmarks", "landmarks5"]
SPLITS = ("train", "val", "test")
POLICIES = ("skip", "fail")
#: How many offending paths a "fail" message lists before it only counts the rest.
MAX_LISTED = 20

#: One reader per layout: reader(root, problems) -> list of row dicts (see `read_dataset`).
READERS = {
    "ffpp": ffpp.read_ffpp,
    "celebdf": celebdf.read_celebdf,
    "dfdc": dfdc.read_dfdc,
    "wilddeepfake": wilddeepfake.read_wilddeepfake,
}
#: Folders (glob patterns) of which a dataset root must hold at least one.
EXPECTED_FOLDERS = {
    "ffpp": ffpp.EXPECTED_FOLDERS,
    "celebdf": celebdf.EXPECTED_FOLDERS,
    "dfdc": dfdc.EXPECTED_FOLDERS,
    "wilddeepfake": wilddeepfake.EXPECTED_FOLDERS,
}
#: Layouts without an official validation split: val is carved out of train (unless the
#: input already names validation videos: a DeepfakeBench JSON written by our export).
CARVES_VALIDATION = frozenset({"celebdf", "dfdc", "wilddeepfake"})


@dataclass(frozen=True)
class IndexSettings:
    """Settings of the data stage (config section `datasets`).

    Arguments:
        on_inconsistency: "skip" drops inconsistent entries and lists them in problems.csv;
            "fail" stops the run after writing problems.csv.
        val_fraction: fraction of the training videos moved to validation, for layouts
            without an official validation split (Celeb-DF, DFDC, WildDeepfake).
        seed: seed of the hash that chooses the validation groups.
    """

    on_inconsistency: str
    val_fraction: float
    seed: int


class Problems:
    """Collects inconsistencies as (path, reason) rows; they become problems.csv."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def add(self, path: str | Path, reason: str) -> None:
        """Record one offending path and what is wrong with it."""
        log.debug("problem: %s: %s", path, reason)
        self.rows.append((str(path), reason))

    def __len__(self) -> int:
        return len(self.rows)

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with columns `path,reason`."""
        return pd.DataFrame(self.rows, columns=PROBLEM_COLUMNS, dtype=str)


def read_dataset(
    dataset: str, root: str | Path, settings: IndexSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index one dataset root into a manifest.

    Description:
        Checks the root, runs the layout's reader, builds each row's key
        `{dataset}/{compression}/{technique}/{video}`, drops every row whose key is not
        unique, and carves validation out of train where the layout has no official split
        (`carve_validation`). Entries found inconsistent are left out of the manifest and listed
        in the problems table, whatever the policy (`write_manifest` applies it).

    Arguments:
        dataset: layout name, one of `READERS` (`ffpp`, `celebdf`, `dfdc`, `wilddeepfake`).
        root: the dataset's root folder (config key `datasets.roots.<dataset>`).
        settings: the stage's settings.

    Returns:
        (manifest, problems): the manifest with `COLUMNS`, sorted by key, and the problems
        table with `PROBLEM_COLUMNS`.

    Raises:
        DamlError: unknown dataset or bad settings; a missing root; a root holding none of
            the layout's folders; a layout file without which nothing can be indexed.
    """
    _check_settings(settings)
    if dataset not in READERS:
        raise DamlError(
            f"unknown dataset {dataset!r}: expected one of {sorted(READERS)} "
            f"(config key datasets.roots)"
        )
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DamlError(
            f"dataset root {root} does not exist or is not a folder "
            f"(config key datasets.roots.{dataset}): point it at your copy of the dataset"
        )
    expected = EXPECTED_FOLDERS[dataset]
    if not any(path.is_dir() for pattern in expected for path in root.glob(pattern)):
        raise DamlError(
            f"dataset root {root} (config key datasets.roots.{dataset}) holds none of the "
            f"folders expected for {dataset}: {', '.join(expected)}; point it at the folder "
            f"that contains them"
        )

    problems = Problems()
    rows = READERS[dataset](root, problems)
    manifest = _finish(dataset, rows, problems, settings)
    log.info("%s: indexed %d entries under %s", dataset, len(manifest), root)
    return manifest, problems.to_frame()


def read_deepfakebench_dataset(
    dataset: str, source: deepfakebench.Source, settings: IndexSettings
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Index one dataset preprocessed by DeepfakeBench (its JSON and face crops).

    Description:
        As `read_dataset`, with `daml.data.deepfakebench.read_deepfakebench` as the reader:
        the same keys, identities, duplicate rule and validation carve-out, so a dataset
        gives the same manifest whichever way it comes in.

    Arguments:
        dataset: `ffpp`, `celebdf` or `dfdc`.
        source: its root (their `rgb_dir`), JSON and workdir (config key
            `datasets.deepfakebench.<dataset>`).
        settings: the stage's settings.

    Returns:
        (manifest, problems, frames): as `read_dataset`, and the frames table with
        `FRAME_COLUMNS`, one row per usable crop of a manifest video, by key and frame.

    Raises:
        DamlError: a dataset DeepfakeBench does not give; a missing root or JSON (naming
            its config key); a JSON that cannot be read.
    """
    _check_settings(settings)
    key = f"datasets.deepfakebench.{dataset}"
    if dataset not in deepfakebench.DATASETS:
        raise DamlError(f"{key}: DeepfakeBench inputs are read for "
                        f"{list(deepfakebench.DATASETS)} only, not {dataset!r}")
    if not source.root.is_dir():
        raise DamlError(f"{key}.root: folder {source.root} does not exist; set it to the "
                        f"folder DeepfakeBench calls rgb_dir (holding "
                        f"{deepfakebench.NAMES[dataset]}/)")
    if not source.json.is_file():
        raise DamlError(f"{key}.json: file {source.json} does not exist; set it to the "
                        f"dataset JSON (e.g. {deepfakebench.NAMES[dataset]}.json in "
                        f"DeepfakeBench's preprocessing/dataset_json/)")
    problems = Problems()
    rows, crops = deepfakebench.read_deepfakebench(dataset, source, problems)
    manifest = _finish(dataset, rows, problems, settings)
    frames = pd.DataFrame(crops, columns=deepfakebench.FRAME_COLUMNS)
    frames.insert(0, "key", [video_key(dataset, c, t, v) for t, c, v in
                             zip(frames["technique"], frames["compression"], frames["video"])])
    frames = frames[frames["key"].isin(set(manifest["key"]))]
    frames = frames.sort_values(["key", "frame"], kind="stable").reset_index(drop=True)
    log.info("%s: indexed %d videos, %d face crops from %s", dataset, len(manifest),
             len(frames), source.json)
    return manifest, problems.to_frame(), frames[FRAME_COLUMNS]


def _finish(dataset: str, rows: list[dict], problems: Problems,
            settings: IndexSettings) -> pd.DataFrame:
    """A reader's rows as a manifest: keys, duplicates dropped, validation carved, sorted."""
    manifest = _drop_duplicate_keys(_to_frame(dataset, rows), problems)
    if dataset in CARVES_VALIDATION and not (manifest["split"] == "val").any():
        train = manifest["split"] == "train"
        val_groups = carve_validation(
            manifest.loc[train, "group"].tolist(), settings.val_fraction, settings.seed
        )
        manifest.loc[train & manifest["group"].isin(val_groups), "split"] = "val"
    manifest = manifest.sort_values("key", kind="stable").reset_index(drop=True)[COLUMNS]

    if len(problems):
        log.warning(
            "%s: %d inconsistencies, left out of the manifest (policy %r): %s",
            dataset,
            len(problems),
            settings.on_inconsistency,
            _listing(problems.to_frame()),
        )
    return manifest


def write_manifest(
    manifest: pd.DataFrame,
    problems: pd.DataFrame,
    manifest_path: str | Path,
    problems_path: str | Path,
    settings: IndexSettings,
) -> None:
    """Write problems.csv, apply the inconsistency policy, then write manifest.csv.

    Description:
        Both files are written atomically. problems.csv is written first, always (with
        only its header when empty), so that a stopped run leaves the list of what to fix.
        With `on_inconsistency: fail` any problem raises before the manifest is written;
        an empty manifest raises in either policy.

    Arguments:
        manifest: from `read_dataset`.
        problems: from `read_dataset`.
        manifest_path: destination, e.g. `results/data/{dataset}/manifest.csv`.
        problems_path: destination, e.g. `results/data/{dataset}/problems.csv`.
        settings: the stage's settings (`on_inconsistency`).

    Raises:
        DamlError: naming up to `MAX_LISTED` offending paths (then a count) and
            problems.csv, when the policy is "fail" and problems is not empty; or when no
            entry is left to index.
    """
    _check_settings(settings)
    write_csv(problems_path, problems[PROBLEM_COLUMNS])
    if settings.on_inconsistency == "fail" and len(problems):
        raise DamlError(
            f"{len(problems)} dataset inconsistencies (datasets.on_inconsistency: fail), "
            f"all listed in {problems_path}: {_listing(problems)}. Fix these files, or set "
            f"datasets.on_inconsistency: skip to leave them out"
        )
    if manifest.empty:
        raise DamlError(
            f"no usable entry found for {manifest_path}; see {problems_path} for what was "
            f"left out and check the dataset's input (config key datasets.roots, or "
            f"datasets.deepfakebench for a DeepfakeBench JSON)"
        )
    write_csv(manifest_path, manifest[COLUMNS])


def index_dataset(
    dataset: str,
    root: str | Path,
    settings: IndexSettings,
    manifest_path: str | Path,
    problems_path: str | Path,
) -> pd.DataFrame:
    """Index a dataset and write its manifest and problems table (what the rule calls).

    Returns:
        the manifest written.
    """
    manifest, problems = read_dataset(dataset, root, settings)
    write_manifest(manifest, problems, manifest_path, problems_path, settings)
    return manifest


def index_deepfakebench(
    dataset: str,
    source: deepfakebench.Source,
    settings: IndexSettings,
    manifest_path: str | Path,
    problems_path: str | Path,
    frames_path: str | Path,
) -> pd.DataFrame:
    """Index a DeepfakeBench input; write its manifest, problems and frames tables.

    The policy applies as in `write_manifest`; the frames table is written last, so a
    stopped run leaves no frames table that looks complete.

    Returns:
        the manifest written.
    """
    manifest, problems, frames = read_deepfakebench_dataset(dataset, source, settings)
    write_manifest(manifest, problems, manifest_path, problems_path, settings)
    write_csv(frames_path, frames)
    return manifest


def video_key(dataset: str, compression: str, technique: str, video: str) -> str:
    """A video's key `{dataset}/{compression}/{technique}/{video}` (docs/architecture.md)."""
    return "/".join((dataset, compression, technique, video))


def carve_validation(groups: list[str], val_fraction: float, seed: int) -> set[str]:
    """Choose, deterministically, the groups whose videos move from train to validation.

    Description:
        Groups (an identity, an original video, an archive: whatever the layout tells) are
        ordered by a SHA-256 hash of `"{seed}/{group}"`, then taken in that order until
        they hold at least `val_fraction` of the videos. A group is never split, so one
        identity's reals and fakes stay on one side. At least one group goes to
        validation when `val_fraction > 0`, and at least one stays in train.

    Arguments:
        groups: the group of each training video (one entry per video).
        val_fraction: target fraction of videos, in [0, 1).
        seed: changes the choice; the same seed and groups always give the same choice.

    Returns:
        the set of groups for validation.
    """
    sizes = Counter(groups)
    order = sorted(sizes, key=lambda g: (hashlib.sha256(f"{seed}/{g}".encode()).hexdigest(), g))
    target = val_fraction * len(groups)
    chosen: set[str] = set()
    taken = 0
    for group in order[:-1]:
        if taken >= target:
            break
        chosen.add(group)
        taken += sizes[group]
    return chosen


def select_rows(
    table: pd.DataFrame, techniques: Sequence[str] | None, splits: Iterable[str] | None
) -> np.ndarray:
    """Boolean mask of rows in `splits` that are real or fake of one of `techniques`.

    For a manifest or a face table (both have `split`, `label`, `technique`).

    Arguments:
        techniques: fake techniques to keep (real rows are always kept); None keeps all.
        splits: splits to keep; None keeps all.
    """
    mask = np.ones(len(table), dtype=bool)
    if splits is not None:
        mask &= table["split"].isin(list(splits)).to_numpy()
    if techniques is not None:
        real = table["label"].to_numpy() == 0
        mask &= real | table["technique"].isin(list(techniques)).to_numpy()
    return mask


def shard_of(key: str, n_shards: int) -> int:
    """The face-set shard of a video: `zlib.crc32(key) % n_shards` (stable when videos are added)."""
    return zlib.crc32(key.encode()) % n_shards


def reason_kind(reason: str) -> str:
    """A skip or problem reason with its names, paths and numbers blanked out, for counting.

    "not a video (... input: '/data/x.mp4')" and the same for y.mp4 are one kind.
    """
    named = re.sub(r"'[^']*'|\"[^\"]*\"|\S+/\S+", "…", str(reason))
    return re.sub(r"\d+", "N", named)


def summarise(manifest: pd.DataFrame) -> pd.DataFrame:
    """Count manifest entries per dataset, compression, split, technique and label.

    Returns:
        a DataFrame with columns `dataset,compression,split,technique,label,videos`,
        splits in the order train, val, test.
    """
    keys = ["dataset", "compression", "split", "technique", "label"]
    counts = manifest.groupby(keys, sort=False).size().rename("videos").reset_index()
    order = {split: i for i, split in enumerate(SPLITS)}
    counts["_split_order"] = counts["split"].map(order)
    counts = counts.sort_values(
        ["dataset", "compression", "_split_order", "technique", "label"], kind="stable"
    )
    return counts.drop(columns="_split_order").reset_index(drop=True)


def _check_settings(settings: IndexSettings) -> None:
    if settings.on_inconsistency not in POLICIES:
        raise DamlError(
            f"datasets.on_inconsistency is {settings.on_inconsistency!r}; "
            f"use one of {list(POLICIES)}"
        )
    if not 0 <= settings.val_fraction < 1:
        raise DamlError(
            f"datasets.val_fraction is {settings.val_fraction!r}; use a number in [0, 1)"
        )


def _to_frame(dataset: str, rows: list[dict]) -> pd.DataFrame:
    # readers give technique, video, split, label, path (+ compression, member, target_id,
    # source_id, clip_id, group where they apply); the shared columns are filled in here, once
    defaults = dict(dataset=dataset, compression="none", member="", target_id="", source_id="")
    records = [{**defaults, **row} for row in rows]
    for record in records:
        record.setdefault("group", record["target_id"])
        # where a layout names videos by the footage they show (FF++, DFDC), the target is it
        record.setdefault("clip_id", record["target_id"])
        record["key"] = video_key(
            dataset, record["compression"], record["technique"], record["video"]
        )
    frame = pd.DataFrame(records, columns=COLUMNS + ["group"])
    return frame.astype({c: int if c == "label" else str for c in frame.columns})


def _drop_duplicate_keys(manifest: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    # which of two entries with one key is right cannot be told, so both are dropped
    duplicated = manifest["key"].duplicated(keep=False)
    for key, rows in manifest[duplicated].groupby("key", sort=True):
        paths = rows["path"] + rows["member"].map(lambda m: f"::{m}" if m else "")
        for path in paths:
            others = ", ".join(p for p in paths if p != path) or "the same path"
            problems.add(path, f"duplicate key {key}: also {others}; all copies left out")
    return manifest[~duplicated]


def _listing(problems: pd.DataFrame) -> str:
    paths = problems["path"].tolist()
    shown = "; ".join(paths[:MAX_LISTED])
    if len(paths) > MAX_LISTED:
        shown += f"; and {len(paths) - MAX_LISTED} more"
    return shown
