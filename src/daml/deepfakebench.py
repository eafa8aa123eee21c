"""DeepfakeBench in and out: its aligned crops into face shards, our face shards into its layout.

Description:
    In (`import_shard`, rule `import_deepfakebench`): for a dataset given as a DeepfakeBench
    input (`datasets.deepfakebench`), the face stage reads the crops the data stage found
    (`results/data/{dataset}/frames.csv`, `daml.data.deepfakebench`) instead of decoding
    videos and detecting faces. Per video it takes `frames.per_video` of them, spread as the
    frames stage spreads frames over a video (`daml.frames.sample_indices`), reads each PNG
    (OpenCV gives BGR; the shard holds RGB), takes its central square if it is not square,
    and resizes it to `faces.crop_size` (INTER_AREA when shrinking, INTER_LINEAR when
    enlarging; not at all when the sizes match, so a PNG of our crop size comes back byte for
    byte). The 5 landmarks come from their 81 points (`daml.data.deepfakebench.five_points`)
    or from our own 5-point file, mapped into the crop. Rows have `how` = `imported`, the
    face box is the square taken from the PNG and the score is empty (no detector ran).

    Out (`export_deepfakebench`, rule `export_deepfakebench`): the face sets' crops are
    written as DeepfakeBench keeps its preprocessed data, `rgb/<their dataset>/.../frames/
    <video>/<frame>.png` (frame numbers as names, `%03d` as theirs), with our 5 points in
    `landmarks5/<video>/<frame>.npy` beside them, and one JSON per dataset in their structure
    (`dataset_json/FaceForensics++.json`, `FF-DF.json`, ..., their `_c40` files, `Celeb-DF-v2.json`,
    `DFDC.json`) with their label names and our splits (validation included). Every frame path
    begins with `./` and is relative to `workdir`, the folder DeepfakeBench is run from: their
    loader prefixes any other path with `rgb_dir` and a backslash. Their 81-point
    `landmarks/` files are not written: their loader reads zeros for a missing one, which
    detectors without landmarks (`with_landmark: false`, Xception, EfficientNet-B4 and most
    others) never look at, while a partly filled 81-point array would mislead those that do.
    A DFDC train part's `metadata.json` records each fake's original, so that reading the
    export back gives the same identities. No crop is resized or recompressed (PNG is
    lossless), so `import_shard` on the export gives the same crops at the same crop size.

References:
    DeepfakeBench (Yan et al., NeurIPS 2023 Datasets and Benchmarks): `preprocessing/
    rearrange.py`, `preprocessing/preprocess.py`, `training/dataset/abstract_dataset.py`;
    docs/datasets.md, section "DeepfakeBench"; docs/architecture.md, section "Faces".
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from daml.config import FACESETS, faceset_compression
from daml.data import celebdf, deepfakebench as reader
from daml.data.manifest import CARRIED_COLUMNS, FRAME_COLUMNS, SPLITS
from daml.errors import DamlError
from daml.faces import fallback_crop
from daml.frames import sample_indices, select_shard
from daml.io import atomic_folder
from daml.shards import CROP_COLUMNS, CropWriter, write_shard

log = logging.getLogger(__name__)

HOW = "imported"
#: face sets DeepfakeBench has labels for (it preprocesses no WildDeepfake)
EXPORTABLE = tuple(f for f, (dataset, _) in FACESETS.items() if dataset in reader.DATASETS)
DFDC_PART = re.compile(r"dfdc_train_part_\d+")
TEXT = {c: str for c in ("key", "video", "target_id", "source_id", "clip_id")}


@dataclasses.dataclass(frozen=True)
class ImportSettings:
    """Settings of the import (from config sections `faces` and `frames`).

    Arguments:
        crop_size: side of the stored crops (`faces.crop_size`).
        per_video: crops taken per video (`frames.per_video`), spread uniformly over the
            crops DeepfakeBench kept; all of them when it kept fewer.
    """

    crop_size: int
    per_video: int


# ---------------------------------------------------------------- in


def import_shard(manifest_csv, frames_csv, out_npz, out_csv, out_skips, dataset: str,
                 compression: str, shard: int, n_shards: int,
                 settings: ImportSettings) -> dict:
    """Import the DeepfakeBench crops of one face-set shard into the face shard files.

    Description:
        Writes the three files of docs/architecture.md ("Faces") atomically, as the face
        stage does: a PNG that cannot be read becomes a skips row with its frame number, a
        manifest video without a crop in the frames table one with frame -1.

    Arguments:
        manifest_csv: `results/data/{dataset}/manifest.csv`.
        frames_csv: `results/data/{dataset}/frames.csv` (`FRAME_COLUMNS`).
        out_npz, out_csv, out_skips: the shard's three files.
        dataset, compression: the face set (`compression` is `none` outside FF++).
        shard, n_shards: which shard of how many.
        settings: `ImportSettings`.

    Returns:
        Counts: {"videos", "crops", "skipped_frames", "skipped_videos", "no_landmarks"}.
    """
    manifest = _read(manifest_csv, "manifest")
    frames = _read(frames_csv, "frames table")
    missing = set(FRAME_COLUMNS) - set(frames.columns)
    if missing:
        raise DamlError(f"{frames_csv} lacks columns {sorted(missing)}; rerun the "
                        "index_deepfakebench rule")
    rows = select_shard(manifest, dataset, compression, shard, n_shards)
    frames = frames[frames["key"].isin(set(rows["key"]))]
    frames = frames.assign(frame=frames["frame"].astype(int))
    by_key = {key: group.sort_values("frame") for key, group in frames.groupby("key")}
    size = settings.crop_size
    out_npz = Path(out_npz)
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    table, skips = [], []
    counts = dict(videos=0, crops=0, skipped_frames=0, skipped_videos=0, no_landmarks=0)
    writer = CropWriter(out_npz.parent, size)
    try:
        for row in tqdm(rows.to_dict("records"), desc=f"import {dataset} shard {shard}",
                        unit="video", disable=None):
            crops = by_key.get(row["key"])
            if crops is None or crops.empty:
                skips.append([row["key"], row["path"], -1, "no crop in the frames table"])
                counts["skipped_videos"] += 1
                continue
            counts["videos"] += 1
            chosen = crops.iloc[sample_indices(len(crops), settings.per_video)]
            base = [row[c] for c in CARRIED_COLUMNS]
            for crop in chosen.itertuples(index=False):
                image = cv2.imread(crop.path, cv2.IMREAD_COLOR)
                if image is None:
                    skips.append([row["key"], crop.path, crop.frame, "unreadable PNG"])
                    counts["skipped_frames"] += 1
                    continue
                # their crops are square: the central square at our size, byte for byte when
                # it already is our size (cv2's resize to the same size is the identity), so an
                # export reads back to the same crops
                face, box = fallback_crop(np.ascontiguousarray(image[..., ::-1]), size)
                points = crop_landmarks(crop.landmarks, crop.landmarks5, box, size)
                if points is None:
                    counts["no_landmarks"] += 1
                    points = np.full((5, 2), np.nan)
                writer.add(face)
                table.append(base + [crop.frame, *box.tolist(),
                                     *np.round(points, 2).ravel().tolist(), np.nan, HOW])
                counts["crops"] += 1
        write_shard(writer, out_npz, table, out_csv, skips, out_skips)
    finally:
        writer.close()
    log.info("%s shard %d: %d crops of %d videos imported (%d without landmarks); skipped "
             "%d frames and %d videos", dataset, shard, counts["crops"], counts["videos"],
             counts["no_landmarks"], counts["skipped_frames"], counts["skipped_videos"])
    return counts


def crop_landmarks(landmarks: str, landmarks5: str, box: np.ndarray,
                   size: int) -> np.ndarray | None:
    """Our 5 points in the stored crop, from their 81-point file or our 5-point one.

    Arguments:
        landmarks, landmarks5: the files (`""` where absent), points in PNG pixels.
        box: the square taken from the PNG (`daml.faces.fallback_crop`).
        size: the stored crop side.

    Returns:
        float64 (5, 2) in the stored crop's pixels (pixel centres at integers), or None.
    """
    points = None
    try:
        if landmarks:
            points = reader.five_points(np.load(landmarks, allow_pickle=False))
        if points is None and landmarks5:
            loaded = np.asarray(np.load(landmarks5, allow_pickle=False), np.float64)
            points = loaded if loaded.shape == (5, 2) and np.isfinite(loaded).all() else None
    except (OSError, ValueError):  # a truncated or foreign file: the crop is still usable
        return None
    if points is None:
        return None
    scale = size / (box[2] - box[0])
    if scale == 1 and not box[:2].any():
        return points
    return (points - box[:2] + 0.5) * scale - 0.5


def _read(path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DamlError(f"{path}: cannot read the {what} ({error}); rerun the "
                        "index_deepfakebench rule") from error


# ---------------------------------------------------------------- out


def export_deepfakebench(shards: Mapping[str, Sequence[str | Path]],
                         manifests: Mapping[str, str | Path], out_dir: str | Path,
                         workdir: str | Path | None = None) -> dict:
    """Write face sets in DeepfakeBench's preprocessed layout with its dataset JSONs.

    Description:
        Builds `out_dir` under a temporary name and renames it at the end (a killed job
        leaves no folder that looks complete): `rgb/` with the crops, `dataset_json/` with
        the JSONs, and `deepfakebench.yaml`, the keys to set in DeepfakeBench's train and
        test configs. See the module description for the layout.

    Arguments:
        shards: face set (`ffpp-c23`, `ffpp-c40`, `celebdf`, `dfdc`) -> its `shard{N}.npz`
            files (the `.csv` beside each).
        manifests: dataset -> its manifest (for DFDC, each video's training part).
        out_dir: the export folder, e.g. `results/deepfakebench`.
        workdir: the folder DeepfakeBench runs from; frame paths are written relative to it
            (None: the current folder).

    Returns:
        Counts per face set: {"ffpp-c23": {"videos": ..., "crops": ...}, ...}.
    """
    final = Path(out_dir).absolute()
    workdir = Path(workdir or os.getcwd()).absolute()
    unknown = sorted(set(shards) - set(EXPORTABLE))
    if unknown:
        raise DamlError(f"export_deepfakebench.facesets: {unknown} cannot be exported "
                        f"(DeepfakeBench has labels for {list(EXPORTABLE)} only)")
    counts, sizes = {}, set()
    with atomic_folder(final) as tmp:
        written = _Written(tmp, final, workdir)
        for faceset, paths in shards.items():
            dataset = FACESETS[faceset][0]
            parts = _dfdc_parts(manifests[dataset]) if dataset == "dfdc" else {}
            videos, crops_written = set(), 0
            for npz in map(Path, paths):
                table, crops = _read_shard(npz)
                sizes |= {crops.shape[1]} if len(crops) else set()
                for row, crop in zip(table.to_dict("records"), crops):
                    written.add(npz, dataset, faceset_compression(faceset), row, crop, parts)
                    videos.add(row["key"])
                    crops_written += 1
            counts[faceset] = {"videos": len(videos), "crops": crops_written}
            log.info("%s: %d crops of %d videos exported", faceset, crops_written, len(videos))
        entries, metadata = written.entries, written.metadata
        for part, records in metadata.items():
            (tmp / "rgb" / reader.NAMES["dfdc"] / "train" / part / "metadata.json").write_text(
                json.dumps(records, indent=1, sort_keys=True))
        compressions = {d: sorted({faceset_compression(f) for f in shards if FACESETS[f][0] == d})
                        for d in reader.DATASETS}
        (tmp / "dataset_json").mkdir()
        for name, content in dataset_jsons(entries, compressions).items():
            (tmp / "dataset_json" / f"{name}.json").write_text(json.dumps(content, sort_keys=True))
        (tmp / "deepfakebench.yaml").write_text(_their_config(final, workdir, sizes))
    if reader.FRAMES in os.path.relpath(final, workdir):
        log.warning("the path from %s to %s holds 'frames': DeepfakeBench's loader, which "
                    "replaces every 'frames' of a frame path to find landmarks and masks, will "
                    "look for them in the wrong place", workdir, final)
    return counts


class _Written:
    """The export's crops as they are written: PNG and 5 points per crop, JSON entries,
    DFDC metadata records."""

    def __init__(self, tmp: Path, final: Path, workdir: Path):
        self.tmp, self.final, self.workdir = tmp, final, workdir
        # dataset -> label name -> split -> compression -> video -> [(frame, path)]
        self.entries: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(
            lambda: defaultdict(lambda: defaultdict(list)))))
        self.metadata: dict[str, dict] = defaultdict(dict)  # DFDC part -> its records

    def add(self, npz: Path, dataset: str, compression: str, row: Mapping, crop: np.ndarray,
            parts: Mapping[str, str]) -> None:
        folder = _folder(dataset, row, parts)
        name = f"{int(row['frame']):03d}"  # their frame names: the frame number, as preprocess.py
        png = PurePosixPath("rgb") / folder / f"{name}.png"
        if (self.tmp / png).exists():
            raise DamlError(f"{npz}: frame {row['frame']} of {row['key']} occurs twice; rerun "
                            "the faces stage for this shard")
        (self.tmp / png).parent.mkdir(parents=True, exist_ok=True)
        # cv2 writes BGR arrays as ordinary (RGB) PNG files, as DeepfakeBench's crops are
        if not cv2.imwrite(str(self.tmp / png), np.ascontiguousarray(crop[..., ::-1])):
            raise DamlError(f"cannot write {self.tmp / png}; check the disk")
        _write_landmarks(self.tmp / "rgb" / folder.parent.parent / reader.LANDMARKS5
                         / folder.name / f"{name}.npy", row)
        label = reader.LABEL_NAMES[(dataset, row["technique"])]
        path = "./" + os.path.relpath(self.final / png, self.workdir)
        self.entries[dataset][label][row["split"]][compression][row["video"]].append(
            (int(row["frame"]), path))
        if dataset == "dfdc" and row["split"] != "test":
            self.metadata[folder.parent.parent.name][f"{row['video']}.mp4"] = _dfdc_record(row)


def dataset_jsons(entries: Mapping, compressions: Mapping[str, list[str]]) -> dict[str, dict]:
    """The JSONs DeepfakeBench reads, by file name (without `.json`).

    Arguments:
        entries: dataset -> label -> split -> compression -> video -> [(frame, path)].
        compressions: dataset -> the compressions exported (FF++; `none` elsewhere).

    Returns:
        `FaceForensics++`, one file per FF++ technique label (`FF-DF`: FF-real and FF-DF, as
        theirs), the `_c40` files their loader opens for c40 (only c40 inside, under the same
        top-level key), and `Celeb-DF-v2`, `DFDC`: every split of every label, even when
        empty, and for FF++ every exported compression in each, since their loader indexes
        them without a default.
    """
    files = {}
    for dataset in reader.DATASETS:
        if not compressions.get(dataset):
            continue
        labels = [n for n, (d, _, _) in reader.LABELS.items() if d == dataset]
        blocks = {label: _block(label, entries.get(dataset, {}).get(label, {}),
                                compressions[dataset], dataset) for label in labels}
        name = reader.NAMES[dataset]
        files[name] = {name: blocks}
        if dataset != "ffpp":
            continue
        real, *techniques = labels  # every technique file holds FF-real beside it, as theirs
        for label in techniques:
            files[label] = {label: {real: blocks[real], label: blocks[label]}}
        if "c40" in compressions[dataset]:
            for file in [name, *techniques]:
                files[f"{file}_c40"] = {file: {
                    label: {split: {"c40": block[split]["c40"]} for split in SPLITS}
                    for label, block in files[file][file].items()}}
    return files


def _block(label: str, splits: Mapping, compressions: list[str], dataset: str) -> dict:
    """One label's {split: ({compression:} {video: {label, frames}})}, every split present."""
    block = {}
    for split in SPLITS:
        by_compression = {
            compression: {
                video: {"label": label, "frames": [path for _, path in sorted(frames)]}
                for video, frames in sorted(splits.get(split, {}).get(compression, {}).items())
            }
            for compression in compressions
        }
        block[split] = by_compression if dataset == "ffpp" else by_compression["none"]
    return block


def _folder(dataset: str, row: Mapping, parts: Mapping[str, str]) -> PurePosixPath:
    """A video's frames folder under `rgb/`, as DeepfakeBench's preprocessing names it."""
    video, technique = row["video"], row["technique"]
    if dataset == "ffpp":
        compression = row["compression"]
        if technique == "real":
            return PurePosixPath("FaceForensics++/original_sequences/youtube", compression,
                                 reader.FRAMES, video)
        return PurePosixPath("FaceForensics++/manipulated_sequences", technique, compression,
                             reader.FRAMES, video)
    if dataset == "celebdf":
        label = int(row["label"])
        for folder, (_, folder_label, pattern) in celebdf.FOLDERS.items():
            if folder_label == label and pattern.fullmatch(video):
                return PurePosixPath("Celeb-DF-v2", folder, reader.FRAMES, video)
        raise DamlError(f"Celeb-DF video {video!r} follows no Celeb-DF folder's name "
                        "pattern; rerun index_dataset")
    if row["split"] == "test":
        return PurePosixPath("DFDC/test", reader.FRAMES, video)
    return PurePosixPath("DFDC/train", parts.get(row["key"], "dfdc_train_part_0"),
                         reader.FRAMES, video)


def _dfdc_parts(manifest_csv: str | Path) -> dict[str, str]:
    """DFDC key -> its training part (`dfdc_train_part_N`) named in the manifest's path."""
    manifest = pd.read_csv(manifest_csv, dtype=str, keep_default_na=False)
    parts = {}
    for key, path in zip(manifest["key"], manifest["path"]):
        named = [p for p in Path(path).parts if DFDC_PART.fullmatch(p)]
        if named:
            parts[key] = named[-1]
    return parts


def _dfdc_record(row: Mapping) -> dict:
    """A train video's `metadata.json` entry as DFDC ships it (original of a fake if known)."""
    record = {"label": "FAKE" if int(row["label"]) else "REAL", "split": "train"}
    if int(row["label"]) and row["target_id"] and row["target_id"] != row["video"]:
        record["original"] = f"{row['target_id']}.mp4"
    return record


def _write_landmarks(path: Path, row: Mapping) -> None:
    """Our 5 points of a crop as float32 (5, 2), where the shard has them."""
    points = np.array([[row[f"lm{i}x"], row[f"lm{i}y"]] for i in range(5)], np.float64)
    if not np.isfinite(points).all():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, points.astype(np.float32))


def _read_shard(npz: Path) -> tuple[pd.DataFrame, np.ndarray]:
    csv = npz.with_suffix(".csv")
    try:
        table = pd.read_csv(csv, dtype=TEXT, keep_default_na=False, na_values={})
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=CROP_COLUMNS), np.zeros((0, 1, 1, 3), np.uint8)
    except OSError as error:
        raise DamlError(f"{csv}: cannot read the face shard table ({error}); rerun the "
                        "faces stage") from error
    for column in [f"lm{i}{axis}" for i in range(5) for axis in "xy"]:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    with np.load(npz) as archive:
        crops = archive["crops"]
    if len(crops) != len(table):
        raise DamlError(f"{npz}: {len(crops)} crops but {len(table)} rows in {csv}; rerun "
                        "the faces stage for this shard")
    return table, crops


def _their_config(final: Path, workdir: Path, sizes: set[int]) -> str:
    """The keys to set in DeepfakeBench's train_config.yaml and test_config.yaml."""
    resolution = f"resolution: {sizes.pop()}  # the side of every crop here\n" if len(sizes) == 1 \
        else "# resolution: the crops have sides " + ", ".join(map(str, sorted(sizes))) + "\n"
    return (
        "# Written by `snakemake export_deepfakebench`. Set these in DeepfakeBench's\n"
        "# training/config/train_config.yaml and test_config.yaml (and the detector's yaml for\n"
        "# resolution), and run DeepfakeBench from the folder below: every frame path in the\n"
        "# JSONs begins with ./ and is relative to it.\n"
        f"# run from: {workdir}\n"
        "lmdb: false\n"
        f"rgb_dir: {final / 'rgb'}\n"
        f"dataset_json_folder: {final / 'dataset_json'}\n"
        "with_landmark: false  # their 81-point landmarks are not written (docs/datasets.md)\n"
        + resolution
    )
