"""Reader of a dataset preprocessed by DeepfakeBench: its dataset JSON and aligned face crops.

Description:
    DeepfakeBench (Yan et al., NeurIPS 2023 Datasets and Benchmarks) cuts each sampled video
    frame into an aligned 256x256 face crop with its own preprocessing, and keeps per video
    `<folder>/frames/<video>/<frame number>.png` beside `<folder>/landmarks/<video>/<frame
    number>.npy` (81 dlib points in crop pixels). Its rearranging step indexes them in one
    JSON per dataset: dataset name -> label name -> split -> (FF++ only: compression) ->
    video -> `{"label": <label name>, "frames": [<frame path>, ...]}`. This reader turns such
    a JSON into manifest rows (one per video, with the identities the leak rule needs) and a
    frames table (one row per usable crop), so that the face stage imports the crops instead
    of decoding videos and detecting faces (`daml.deepfakebench.import_shard`).

    What its code does, which this reader follows (the JSON as written, not as described):
    - A frame path beginning with `.` is relative to the folder DeepfakeBench runs from
      (`workdir`); any other relative path is prefixed with its `rgb_dir` (`root`).
      Absolute paths (what the rearranging step writes from an absolute dataset root) are
      taken as they are; backslashes (JSONs written on Windows) are read as separators.
    - A frame file's name must be an integer (its loader sorts frames by `int(stem)`); the
      integer is the frame's number in its video.
    - FF++ labels map to our techniques (`FF-real` real, `FF-DF` Deepfakes, `FF-F2F`
      Face2Face, `FF-FS` FaceSwap, `FF-NT` NeuralTextures) and keep the official splits;
      video names are `TTT` (real) and `TTT_SSS` (target shown with the face of source).
    - Celeb-DF v2 (`CelebDFv2_real`, `CelebDFv2_fake`): its `train` holds every video, the
      test list's too, and its `val` is a copy of `test`; a video under `test` is test,
      any other is train.
    - DFDC (`DFDC_Real`, `DFDC_Fake`): its `val` is a copy of `train`, overwritten by one
      `{label, frames}` entry of the last test video (a bug of the rearranging step); such
      entries are ignored. A train fake's original, and so its identity, comes from the
      part's `metadata.json` beside its `frames/` folder when it is there.
    - For Celeb-DF and DFDC, videos that only `val` names (a JSON written by
      `snakemake export_deepfakebench`, whose `val` is our carve-out) stay validation; when
      there are none, validation is carved out of train as for the official layouts.
    Inconsistent entries (unknown labels, malformed entries, names that do not follow the
    dataset's pattern, frame files that are absent or not named by an integer, a video in
    two splits) become problem rows; a video keeps its usable frames.

References:
    Yan et al., DeepfakeBench: A Comprehensive Benchmark of Deepfake Detection (NeurIPS
    2023), its `preprocessing/rearrange.py` (the JSON) and `preprocessing/preprocess.py`
    (crops and landmarks), and `training/dataset/abstract_dataset.py` (how the JSON is
    read); docs/datasets.md, section "DeepfakeBench".
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from daml.data import celebdf, dfdc, ffpp
from daml.errors import DamlError

if TYPE_CHECKING:
    from daml.data.manifest import Problems

log = logging.getLogger(__name__)

#: the datasets DeepfakeBench preprocesses that the paper uses (it has no WildDeepfake)
DATASETS = ("ffpp", "celebdf", "dfdc")
#: their name of each dataset: the JSON's top-level key and file name
NAMES = {"ffpp": "FaceForensics++", "celebdf": "Celeb-DF-v2", "dfdc": "DFDC"}
#: their label name -> (our dataset, technique, our label)
LABELS = {
    "FF-real": ("ffpp", "real", 0),
    "FF-DF": ("ffpp", "Deepfakes", 1),
    "FF-F2F": ("ffpp", "Face2Face", 1),
    "FF-FS": ("ffpp", "FaceSwap", 1),
    "FF-NT": ("ffpp", "NeuralTextures", 1),
    "CelebDFv2_real": ("celebdf", "real", 0),
    "CelebDFv2_fake": ("celebdf", "Celeb-synthesis", 1),
    "DFDC_Real": ("dfdc", "real", 0),
    "DFDC_Fake": ("dfdc", dfdc.TECHNIQUES[1], 1),
}
#: (dataset, technique) -> their label name, for the export
LABEL_NAMES = {(d, t): name for name, (d, t, _) in LABELS.items()}
#: their labels the paper does not use (FaceShifter, DeepFakeDetection): left out with a log
#: line, as the FF++ reader leaves out those folders
UNUSED = {"ffpp": frozenset({"FF-FH", "FF-SH", "DFD_real", "DFD_fake"})}
SPLITS = ("train", "val", "test")
FRAMES, LANDMARKS = "frames", "landmarks"
#: our 5 points beside their 81, written by the export (float32 (5, 2), crop pixels)
LANDMARKS5 = "landmarks5"
#: FF++ video names: real `TTT`, fake `TTT_SSS`
FFPP_PATTERNS = {0: re.compile(r"(\d+)"), 1: re.compile(r"(\d+)_(\d+)")}
DFDC_PATTERN = re.compile(r"[^/\\]+")
FRAME_NAME = re.compile(r"(\d+)\.[A-Za-z]+")
FRAME_COLUMNS = ["technique", "compression", "video", "frame", "path", "landmarks", "landmarks5"]


@dataclass(frozen=True)
class Source:
    """Where one dataset lies in DeepfakeBench's layout (`datasets.deepfakebench.<dataset>`).

    Arguments:
        root: their `rgb_dir`, the folder that relative frame paths not beginning with `.`
            are read from.
        json: the dataset JSON their rearranging step wrote.
        workdir: the folder frame paths beginning with `.` are relative to (where
            DeepfakeBench runs).
    """

    root: Path
    json: Path
    workdir: Path

    @classmethod
    def from_config(cls, entry: dict) -> "Source":
        """From a validated config entry (`root`, `json`, `workdir`: null = the current folder)."""
        workdir = entry.get("workdir") or os.getcwd()
        paths = (entry["root"], entry["json"], workdir)
        return cls(*(Path(p).expanduser().absolute() for p in paths))


def read_deepfakebench(
    dataset: str, source: Source, problems: Problems
) -> tuple[list[dict], list[dict]]:
    """Index one dataset from its DeepfakeBench JSON.

    Arguments:
        dataset: `ffpp`, `celebdf` or `dfdc`.
        source: where the JSON and the crops are.
        problems: collector of inconsistencies (see the module description).

    Returns:
        (rows, frames): one row dict per video (see `daml.data.manifest.read_dataset`; `path`
        is the video's frames folder) and one dict per usable crop with `FRAME_COLUMNS`.

    Raises:
        DamlError: the JSON cannot be read, is not an object, or holds no label of `dataset`
            (naming the config key `datasets.deepfakebench.<dataset>.json`).
    """
    where = f"datasets.deepfakebench.{dataset}.json"
    try:
        info = json.loads(source.json.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamlError(f"{source.json} is not a readable JSON file ({error}); point {where} "
                        f"at the dataset JSON DeepfakeBench's rearrange.py wrote") from error
    if not isinstance(info, dict):
        raise DamlError(f"{source.json} is not a JSON object {{dataset: {{label: ...}}}} "
                        f"(config key {where})")

    # (technique, compression, video) -> {split: (label name, entry)}
    found: dict[tuple[str, str, str], dict[str, tuple[str, Any]]] = defaultdict(dict)
    labels_seen = 0
    for label_name, split, compression, video, entry in _entries(dataset, info, source.json,
                                                                  problems):
        labels_seen += 1
        _, technique, _ = LABELS[label_name]
        found[(technique, compression, video)].setdefault(split, (label_name, entry))
    if not labels_seen and not len(problems):
        raise DamlError(f"{source.json} holds no video of a {dataset} label "
                        f"({', '.join(n for n, v in LABELS.items() if v[0] == dataset)}); "
                        f"check config key {where}")

    files = _Files()
    metadata = _Metadata()
    rows, frames = [], []
    for (technique, compression, video), by_split in sorted(found.items()):
        split = _split(dataset, by_split)
        if split is None:
            problems.add(source.json, f"{technique} video {video}"
                         f"{'' if compression == 'none' else f' ({compression})'} is in splits "
                         f"{sorted(by_split)}; left out")
            continue
        label_name, entry = by_split[split]
        where_video = f"{source.json} {label_name}/{split}/{video}"
        if not isinstance(entry, dict) or not isinstance(entry.get("frames"), list):
            problems.add(source.json, f"{where_video}: entry is not "
                         "{\"label\": ..., \"frames\": [...]}; left out")
            continue
        if entry.get("label") != label_name:
            problems.add(source.json, f"{where_video}: entry labelled {entry.get('label')!r} "
                         f"under {label_name}; left out")
            continue
        identity = _identity(dataset, label_name, video)
        if identity is None:
            problems.add(source.json, f"{where_video}: name does not follow the {label_name} "
                         "pattern; left out")
            continue
        crops = _frames(entry["frames"], source, files, where_video, problems)
        if not crops:
            problems.add(source.json, f"{where_video}: no usable frame; left out")
            continue
        folder = Path(crops[0]["path"]).parent
        _, _, label = LABELS[label_name]
        if dataset == "dfdc" and label and split != "test":
            # as the DFDC reader: the original of metadata.json, else the fake itself
            original = metadata.original(folder, video) or video
            identity.update(target_id=original, clip_id=original, group=original)
        rows.append(dict(technique=technique, compression=compression, video=video,
                         split=split, label=label, path=str(folder), **identity))
        frames += [dict(technique=technique, compression=compression, video=video, **c)
                   for c in crops]
    log.info("%s: %d videos, %d crops in %s", dataset, len(rows), len(frames), source.json)
    return rows, frames


def five_points(points: Any) -> np.ndarray | None:
    """Our 5 points (RetinaFace's order) from dlib's 68 or 81 landmarks, or None.

    Description:
        The image-left and image-right eye centres are the means of dlib points 36-41 and
        42-47, the nose tip is point 30, the mouth corners are points 48 and 54 (0-based, the
        iBUG 68 scheme; points 68-80 of the 81-point model are the forehead, which has no
        counterpart among ours). An all-zero array (what DeepfakeBench's loader substitutes for
        a missing file) gives None.

    Arguments:
        points: array-like (N, 2) with N >= 68, in crop pixels.

    Returns:
        float64 (5, 2), or None when the points cannot give ours.
    """
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 68:
        return None
    if not np.isfinite(array).all() or not array.any():
        return None
    return np.stack([array[36:42].mean(0), array[42:48].mean(0), array[30], array[48],
                     array[54]])


def _entries(
    dataset: str, info: dict, path: Path, problems: Problems
) -> Iterator[tuple[str, str, str, str, Any]]:
    """(label name, split, compression, video, entry) of every entry of `dataset`'s labels."""
    for top, labels in info.items():
        if not isinstance(labels, dict):
            problems.add(path, f"{top}: not an object {{label: {{split: ...}}}}; left out")
            continue
        for label_name, splits in labels.items():
            if label_name in UNUSED.get(dataset, ()):
                log.info("%s: %s/%s is not used by the paper; left out", path, top, label_name)
                continue
            if label_name not in LABELS:
                problems.add(path, f"{top}/{label_name}: unknown label (known for {dataset}: "
                             f"{', '.join(n for n, v in LABELS.items() if v[0] == dataset)}); "
                             "its videos are left out")
                continue
            if LABELS[label_name][0] != dataset:
                problems.add(path, f"{top}/{label_name}: a {LABELS[label_name][0]} label in "
                             f"the {dataset} JSON; its videos are left out")
                continue
            if not isinstance(splits, dict):
                problems.add(path, f"{top}/{label_name}: not an object {{split: ...}}; left out")
                continue
            for split, content in splits.items():
                where = f"{top}/{label_name}/{split}"
                if split not in SPLITS:
                    problems.add(path, f"{where}: split not one of {list(SPLITS)}; left out")
                    continue
                if not isinstance(content, dict):
                    problems.add(path, f"{where}: not an object; left out")
                    continue
                if dataset == "dfdc" and split == "val" and {"label", "frames"} & set(content):
                    # rearrange.py overwrites DFDC's val with one {label, frames} entry
                    log.info("%s: %s holds rearrange.py's overwritten DFDC val entry; ignored",
                             path, where)
                    content = {k: v for k, v in content.items() if k not in ("label", "frames")}
                if dataset == "ffpp":
                    for compression, videos in content.items():
                        if compression not in ffpp.COMPRESSIONS or not isinstance(videos, dict):
                            problems.add(path, f"{where}/{compression}: not a compression "
                                         f"{list(ffpp.COMPRESSIONS)} holding videos; left out")
                            continue
                        for video, entry in videos.items():
                            yield label_name, split, compression, str(video), entry
                else:
                    for video, entry in content.items():
                        yield label_name, split, "none", str(video), entry


def _split(dataset: str, by_split: dict[str, Any]) -> str | None:
    """The split of a video from the splits whose entries name it; None when they conflict."""
    splits = set(by_split)
    if dataset == "ffpp":
        return splits.pop() if len(splits) == 1 else None
    if dataset == "celebdf":  # train holds every video and val copies test
        return "test" if "test" in splits else ("train" if "train" in splits else "val")
    if "test" in splits:  # dfdc: val copies train; a video in train and test is ambiguous
        return "test" if splits == {"test"} else None
    return "train" if "train" in splits else "val"


def _identity(dataset: str, label_name: str, video: str) -> dict | None:
    """target_id, source_id, clip_id, group of a video from its name; None if it does not fit."""
    _, _, label = LABELS[label_name]
    if dataset == "ffpp":
        match = FFPP_PATTERNS[label].fullmatch(video)
        if match is None:
            return None
        return dict(target_id=match[1], source_id=match[2] if label else "")
    if dataset == "celebdf":
        for folder, (_, folder_label, pattern) in celebdf.FOLDERS.items():
            match = pattern.fullmatch(video)
            if folder_label != label or match is None:
                continue
            # as the Celeb-DF reader: a YouTube video is its own group, a fake shows idA
            if folder == "YouTube-real":
                return dict(target_id=video, source_id="", clip_id=video,
                            group=f"{folder}/{video}.mp4")
            if label:
                return dict(target_id=match[1], source_id=match[2],
                            clip_id=f"{match[1]}_{match[3]}", group=match[1])
            return dict(target_id=match[1], source_id="", clip_id=video, group=match[1])
        return None
    if DFDC_PATTERN.fullmatch(video) is None:
        return None
    # a real video is its own footage; a train fake's original is in its part's
    # metadata.json (`read_deepfakebench`), a test fake's is not published
    if label:
        return dict(target_id="", source_id="", clip_id="", group=video)
    return dict(target_id=video, source_id="", group=video)


def _frames(paths: list, source: Source, files: "_Files", where: str,
            problems: Problems) -> list[dict]:
    """The usable crops of one video: frame number, PNG path, landmark files (or "")."""
    crops: dict[int, dict] = {}
    for item in paths:
        if not isinstance(item, str) or not item:
            problems.add(source.json, f"{where}: frame entry {item!r} is not a path")
            continue
        path = resolve(item, source)
        match = FRAME_NAME.fullmatch(path.name)
        if match is None:
            problems.add(path, f"named by {where}: frame file not named by an integer "
                         "(DeepfakeBench sorts frames by int(name)); left out")
            continue
        if not files.exists(path):
            hint = (f"read relative to datasets.deepfakebench workdir {source.workdir}"
                    if item.startswith(".") else
                    "an absolute path" if PurePosixPath(item.replace("\\", "/")).is_absolute()
                    else f"read relative to datasets.deepfakebench root {source.root}")
            problems.add(path, f"named by {where} but absent ({hint}); left out")
            continue
        frame = int(match[1])
        if frame in crops:
            problems.add(path, f"named by {where}: frame {frame} named twice; the first kept")
            continue
        crops[frame] = dict(frame=frame, path=str(path), **landmark_files(path, files))
    return [crops[frame] for frame in sorted(crops)]


def resolve(item: str, source: Source) -> Path:
    """The file a frame path of the JSON names, read as DeepfakeBench's loader reads it."""
    text = item.replace("\\", "/")
    if text.startswith("."):
        return Path(os.path.normpath(source.workdir / text))
    if PurePosixPath(text).is_absolute():
        return Path(os.path.normpath(text))
    return Path(os.path.normpath(source.root / text))


def landmark_files(frame: Path, files: "_Files | None" = None) -> dict[str, str]:
    """The landmark files beside a crop `<x>/frames/<video>/<n>.png`, "" where absent.

    `landmarks`: DeepfakeBench's 81 points (`<x>/landmarks/<video>/<n>.npy`); `landmarks5`:
    our 5 points as the export writes them (`<x>/landmarks5/<video>/<n>.npy`). Their loader
    replaces `frames` by `landmarks` in the path; only the folder above the video is
    replaced here, so a `frames` elsewhere in the path does not matter.
    """
    files = files or _Files()
    found = {LANDMARKS: "", LANDMARKS5: ""}
    if frame.parent.parent.name != FRAMES:
        return found
    base = frame.parent.parent.parent
    for kind in found:
        candidate = base / kind / frame.parent.name / f"{frame.stem}.npy"
        if files.exists(candidate):
            found[kind] = str(candidate)
    return found


class _Files:
    """Existence checks by folder listing: one `listdir` per folder, not one `stat` per file."""

    def __init__(self) -> None:
        self.listings: dict[Path, frozenset[str]] = {}

    def exists(self, path: Path) -> bool:
        folder = path.parent
        if folder not in self.listings:
            try:
                self.listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                self.listings[folder] = frozenset()
        return path.name in self.listings[folder]


class _Metadata:
    """DFDC train parts' `metadata.json` (`<part>/frames/<video>/` -> `<part>/metadata.json`)."""

    def __init__(self) -> None:
        self.parts: dict[Path, dict] = {}

    def original(self, frames_folder: Path, video: str) -> str:
        """The stem of a fake's original video, or "" when no metadata names it."""
        part = frames_folder.parent.parent
        if part not in self.parts:
            try:
                loaded = json.loads((part / "metadata.json").read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                loaded = {}
            self.parts[part] = loaded if isinstance(loaded, dict) else {}
        entry = self.parts[part].get(f"{video}.mp4")
        original = entry.get("original") if isinstance(entry, dict) else None
        return Path(str(original)).stem if original else ""
