"""Reader of the WildDeepfake layout.

Description:
    Faces come already cropped, as PNG frame sequences packed in archives
    `{real_train,fake_train,real_test,fake_test}/<N>.tar.gz`, each unpacking to
    `<N>/{real|fake}/<sequence>/<frame>.png`. The reader lists each archive's members in one
    streaming pass (nothing is unpacked to disk) and gives one row per sequence: `path` is
    the archive, `member` the folder inside it that holds the sequence's PNGs (exactly as
    the archive spells it), `video` `<folder>/<N>/<sequence>`. The folder prefix is always
    there, so ids stay unique and stable whichever folders hold an archive numbered N.
    `*_test` folders give test, `*_train` folders train, with validation carved out by
    archive number N (so an archive's sequences stay on one side).

References:
    WildDeepfake (Zi et al., ACM MM 2020) and its release's folder layout; docs/datasets.md.
"""

from __future__ import annotations

import logging
import posixpath
import tarfile
import zlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from daml.data.manifest import Problems

log = logging.getLogger(__name__)

#: folder -> (technique, label, split, name of the class folder inside its archives)
FOLDERS = {
    "real_train": ("real", 0, "train", "real"),
    "fake_train": ("wild-fake", 1, "train", "fake"),
    "real_test": ("real", 0, "test", "real"),
    "fake_test": ("wild-fake", 1, "test", "fake"),
}
EXPECTED_FOLDERS = tuple(FOLDERS)
SUFFIX = ".tar.gz"


def read_wilddeepfake(root: Path, problems: Problems) -> list[dict]:
    """Index a WildDeepfake root.

    Arguments:
        root: the folder holding `real_train/`, `fake_train/`, `real_test/`, `fake_test/`.
        problems: collector of inconsistencies (absent folders, archives that are not
            readable tar.gz or hold no PNG, sequences under the wrong class folder).

    Returns:
        one row dict per frame sequence (see `daml.data.manifest.read_dataset`).
    """
    archives = []
    for folder in FOLDERS:
        base = root / folder
        if not base.is_dir():
            problems.add(base, f"folder {folder} absent: its sequences are not indexed")
            continue
        found = sorted(p for p in base.iterdir() if p.name.endswith(SUFFIX) and p.is_file())
        if not found:
            problems.add(base, f"empty folder: no {SUFFIX} archives")
        archives += [(folder, path) for path in found]

    rows = []
    for folder, path in tqdm(archives, desc="wilddeepfake archives", unit="archive", disable=None):
        rows += _read_archive(folder, path, problems)
    return rows


def _read_archive(folder: str, path: Path, problems: Problems) -> list[dict]:
    technique, label, split, class_folder = FOLDERS[folder]
    number = path.name[: -len(SUFFIX)]
    frames: Counter[str] = Counter()
    try:
        # "r|gz" streams: one pass over the compressed bytes, members never extracted
        with tarfile.open(path, mode="r|gz") as archive:
            for member in archive:
                if member.isfile() and member.name.lower().endswith(".png"):
                    frames[posixpath.dirname(member.name)] += 1
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        problems.add(path, f"not a readable tar.gz archive ({error}); left out")
        return []
    if not frames:
        problems.add(path, "archive holds no PNG frame; left out")
        return []
    rows = []
    for member in sorted(frames):
        parts = member.strip("/").split("/")
        if len(parts) < 2 or parts[-2] != class_folder:
            problems.add(
                f"{path}::{member}",
                f"PNGs not under <N>/{class_folder}/<sequence>/ as {folder} archives should "
                f"be; left out",
            )
            continue
        rows.append(
            dict(
                technique=technique,
                video=f"{folder}/{number}/{parts[-1]}",
                split=split,
                label=label,
                path=str(path),
                member=member,
                target_id="",
                source_id="",
                group=number,
            )
        )
    log.debug("%s: %d sequences, %d frames", path, len(rows), sum(frames.values()))
    return rows
