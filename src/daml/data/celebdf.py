"""Reader of the Celeb-DF v2 layout.

Description:
    Videos sit in `Celeb-real/idX_NNNN.mp4`, `YouTube-real/NNNNN.mp4` and
    `Celeb-synthesis/idX_idY_NNNN.mp4` (video NNNN of identity idX with the face of idY
    swapped in). `List_of_testing_videos.txt` names the test videos, one per line as
    `<label> <folder>/<name>.mp4` with 1 = real and 0 = fake: inverted against our labels
    (1 = fake), so the reader converts. Every other video is a training video; validation is
    carved out of them by identity idX (YouTube-real videos are their own group).

References:
    Celeb-DF (Li et al., CVPR 2020) and the README of its v2 release; docs/datasets.md.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from daml.errors import DamlError

if TYPE_CHECKING:
    from daml.data.manifest import Problems

log = logging.getLogger(__name__)

TEST_LIST = "List_of_testing_videos.txt"
#: folder -> (technique, our label, pattern of its file stems: groups target id, source id,
#: clip number; a fake idA_idB_NNNN is made from the real clip idA_NNNN)
FOLDERS = {
    "Celeb-real": ("real", 0, re.compile(r"(id\d+)_(\d+)")),
    "YouTube-real": ("real", 0, re.compile(r"(\d+)")),
    "Celeb-synthesis": ("Celeb-synthesis", 1, re.compile(r"(id\d+)_(id\d+)_(\d+)")),
}
EXPECTED_FOLDERS = tuple(FOLDERS)
#: the test list's label convention: 1 = real, 0 = fake
LIST_TO_OURS = {"1": 0, "0": 1}


def read_celebdf(root: Path, problems: Problems) -> list[dict]:
    """Index a Celeb-DF v2 root.

    Arguments:
        root: the folder holding the three video folders and `List_of_testing_videos.txt`.
        problems: collector of inconsistencies (malformed or duplicate list lines, labels
            not in {0, 1}, listed files absent, a list label contradicting the folder, file
            names not following the layout's pattern, absent folders).

    Returns:
        one row dict per video (see `daml.data.manifest.read_dataset`).

    Raises:
        DamlError: `List_of_testing_videos.txt` is absent (there would be no test split).
    """
    test = _read_test_list(root, problems)
    rows = []
    for folder, (technique, label, pattern) in FOLDERS.items():
        base = root / folder
        if not base.is_dir():
            problems.add(base, f"folder {folder} absent: its videos are not indexed")
            continue
        for path in sorted(base.glob("*.mp4")):
            relative = f"{folder}/{path.name}"
            match = pattern.fullmatch(path.stem)
            if match is None:
                problems.add(
                    path,
                    f"name does not follow the {folder} pattern "
                    f"{pattern.pattern}.mp4; left out",
                )
                continue
            if folder == "YouTube-real":
                target, source, group, clip = path.stem, "", relative, path.stem
            elif label:
                target, source, group, clip = match[1], match[2], match[1], f"{match[1]}_{match[3]}"
            else:
                target, source, group, clip = match[1], "", match[1], path.stem
            if relative in test and test[relative] != label:
                listed = {0: "real", 1: "fake"}.get(test[relative], "both real and fake")
                problems.add(
                    path, f"{TEST_LIST} labels it {listed} but it sits in {folder}; " f"left out"
                )
                continue
            rows.append(
                dict(
                    technique=technique,
                    video=path.stem,
                    split="test" if relative in test else "train",
                    label=label,
                    path=str(path),
                    target_id=target,
                    source_id=source,
                    clip_id=clip,
                    group=group,
                )
            )
    return rows


def _read_test_list(root: Path, problems: Problems) -> dict[str, int]:
    """{"<folder>/<name>.mp4": our label} for every usable line of the test list."""
    path = root / TEST_LIST
    if not path.is_file():
        raise DamlError(
            f"{path} is absent: Celeb-DF v2 ships it at the root beside Celeb-real/; "
            f"without it there is no test split (config key datasets.roots.celebdf)"
        )
    test: dict[str, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{TEST_LIST} line {number}"
        parts = line.split()
        if len(parts) != 2:
            problems.add(path, f"{where} is not '<label> <folder>/<name>.mp4': {line!r}")
            continue
        theirs, relative = parts
        if theirs not in LIST_TO_OURS:
            problems.add(path, f"{where}: label {theirs!r} not in {{0, 1}} (1 = real)")
            continue
        folder = relative.split("/", 1)[0]
        if folder not in FOLDERS:
            problems.add(path, f"{where}: folder {folder!r} not one of {list(FOLDERS)}")
            continue
        if not (root / relative).is_file():
            problems.add(root / relative, f"named by {where} but absent")
            continue
        if relative in test:
            problems.add(root / relative, f"named twice in {TEST_LIST} (again at line {number})")
            if test[relative] != LIST_TO_OURS[theirs]:
                test[relative] = -1  # contradictory labels: never matches the folder's label
            continue
        test[relative] = LIST_TO_OURS[theirs]
    return test
