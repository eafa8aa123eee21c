"""Reader of the FaceForensics++ layout.

Description:
    Pristine videos sit in `original_sequences/youtube/<compression>/videos/NNN.mp4`, fakes in
    `manipulated_sequences/<technique>/<compression>/videos/TTT_SSS.mp4` (target TTT shows the
    face of source SSS). The official splits `splits/{train,val,test}.json` are lists of pairs
    `["953", "974"]`; a pair puts real videos 953 and 974 and fakes 953_974 and 974_953 (of
    every technique, at every compression present) in that split. Every compression folder
    present is indexed; the face stage filters by compression later.

References:
    FaceForensics++ (Rossler et al., ICCV 2019) and its download script's folder layout;
    docs/datasets.md.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daml.data.manifest import Problems

log = logging.getLogger(__name__)

#: the four FF++ manipulation techniques of the paper, as its folders are named; the one list
#: the package uses (the config schema spells the same names as its enum)
TECHNIQUES = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
COMPRESSIONS = ("raw", "c23", "c40")
SPLITS = ("train", "val", "test")
EXPECTED_FOLDERS = ("original_sequences", "manipulated_sequences", "splits")


def read_ffpp(root: Path, problems: Problems) -> list[dict]:
    """Index an FF++ root.

    Arguments:
        root: the folder holding `original_sequences/`, `manipulated_sequences/`, `splits/`.
        problems: collector of inconsistencies (a split naming an absent video, a pair's
            fake absent for a technique/compression, a video no split names, an empty or
            absent technique folder, malformed split files, ids in two splits).

    Returns:
        one row dict per video and compression (see `daml.data.manifest.read_dataset`).
    """
    pairs = _read_splits(root, problems)
    others = sorted(
        p.name
        for p in (root / "manipulated_sequences").glob("*")
        if p.is_dir() and p.name not in TECHNIQUES
    )
    if others:  # e.g. FaceShifter, DeepFakeDetection of later FF++ releases: not in the paper
        log.info("ffpp: ignoring manipulated_sequences/{%s}", ",".join(others))
    real_root = root / "original_sequences" / "youtube"
    fake_roots = {t: root / "manipulated_sequences" / t for t in TECHNIQUES}
    present = [
        c
        for c in COMPRESSIONS
        if any((base / c / "videos").is_dir() for base in [real_root, *fake_roots.values()])
    ]
    if not present:
        problems.add(
            root,
            f"no <{'|'.join(COMPRESSIONS)}>/videos folder under "
            f"original_sequences/youtube or manipulated_sequences/<technique>",
        )
        return []
    log.info("ffpp: compressions present: %s; %d split pairs", ", ".join(present), len(pairs))

    real_expected = {}
    fake_expected = {}
    for split, a, b in pairs:
        for target, source in ((a, b), (b, a)):
            real_expected[target] = dict(split=split, target_id=target, source_id="")
            fake_expected[f"{target}_{source}"] = dict(
                split=split, target_id=target, source_id=source, pair=f"[{a}, {b}]"
            )

    rows = []
    folders = [("real", real_root, real_expected, 0)]
    folders += [(t, fake_roots[t], fake_expected, 1) for t in TECHNIQUES]
    for technique, base, expected, label in folders:
        if not base.is_dir():
            problems.add(base, f"{technique} folder absent: its videos are not indexed")
            continue
        if not any(any((base / c / "videos").glob("*.mp4")) for c in present):
            problems.add(base, f"empty {technique} folder: no <compression>/videos/*.mp4")
            continue
        for compression in present:
            rows += _index_folder(
                base / compression / "videos", technique, compression, label, expected, problems
            )
    return rows


def _index_folder(
    folder: Path,
    technique: str,
    compression: str,
    label: int,
    expected: dict[str, dict],
    problems: Problems,
) -> list[dict]:
    where = f"{technique}/{compression}"
    if not folder.is_dir():
        problems.add(
            folder,
            f"folder absent while {compression} exists elsewhere: "
            f"{len(expected)} {where} videos not indexed",
        )
        return []
    on_disk = {p.stem: p for p in sorted(folder.glob("*.mp4"))}
    if not on_disk:
        problems.add(folder, f"empty folder: no {where} .mp4 videos")
        return []
    rows = []
    for video, info in sorted(expected.items()):
        path = folder / f"{video}.mp4"
        if video not in on_disk:
            if label:
                reason = f"fake {video} of pair {info['pair']} absent for {where}"
            else:
                reason = f"{info['split']}.json names video {video}, absent for {where}"
            problems.add(path, reason)
            continue
        rows.append(
            dict(
                technique=technique,
                compression=compression,
                video=video,
                split=info["split"],
                label=label,
                path=str(path),
                target_id=info["target_id"],
                source_id=info["source_id"],
            )
        )
    for video in sorted(set(on_disk) - set(expected)):
        problems.add(on_disk[video], f"{where} video on disk but named by no split; left out")
    return rows


def _read_splits(root: Path, problems: Problems) -> list[tuple[str, str, str]]:
    """(split, a, b) for every well-formed pair whose ids no two splits claim."""
    entries = []
    for split in SPLITS:
        path = root / "splits" / f"{split}.json"
        if not path.is_file():
            problems.add(path, f"split file absent: no {split} videos indexed")
            continue
        try:
            pairs = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problems.add(path, f"not a readable JSON split file: {error}")
            continue
        if not isinstance(pairs, list):
            problems.add(path, "split file is not a JSON list of pairs")
            continue
        for i, pair in enumerate(pairs):
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in pair)
                or str(pair[0]) == str(pair[1])
            ):
                problems.add(path, f"entry {i} is not a pair of two ids: {pair!r}")
                continue
            entries.append((split, str(pair[0]), str(pair[1])))

    claims = defaultdict(list)
    for split, a, b in entries:
        claims[a].append(split)
        claims[b].append(split)
    dropped = set()
    for video, splits in sorted(claims.items()):
        if len(splits) > 1:
            files = ", ".join(f"{s}.json" for s in splits)
            if len(set(splits)) > 1:
                dropped.add(video)
                reason = f"video {video} named by more than one split ({files}); left out"
            else:
                reason = f"video {video} named by more than one pair ({files})"
            problems.add(root / "splits" / f"{splits[0]}.json", reason)
    return [(s, a, b) for s, a, b in entries if a not in dropped and b not in dropped]
