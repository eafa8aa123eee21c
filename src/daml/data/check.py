"""Before hours of preprocessing: is each dataset complete, and can the configured tables be built?

Description:
    `check_data` runs the readers of every dataset (no video is decoded) and reports, per
    dataset, what was found against the counts its release documents, the inconsistencies
    by kind, and, for every configured table row, whether the splits it needs hold videos of
    both classes. The synthetic stand-ins are checked the same way, but their counts are
    not held against the official ones. A dataset given as a DeepfakeBench input is read from
    its JSON (`daml.data.deepfakebench`), which also counts its face crops.

References:
    FaceForensics++ (Rössler et al., ICCV 2019) and its `splits/*.json`; Celeb-DF v2 (Li et
    al., CVPR 2020); the DFDC dataset (Dolhansky et al., 2020); WildDeepfake (Zi et al., ACM
    MM 2020). docs/datasets.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from daml.config import FACESETS, faceset_compression
from daml.data import deepfakebench, ffpp
from daml.data.manifest import (
    IndexSettings,
    read_dataset,
    read_deepfakebench_dataset,
    reason_kind,
    select_rows,
)
from daml.errors import DamlError
from daml.io import write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Count:
    """One documented count and how to read it off a manifest."""

    what: str
    expected: int
    count: Callable[[pd.DataFrame], int]


def _n(**equal) -> Callable[[pd.DataFrame], int]:
    def count(manifest: pd.DataFrame) -> int:
        mask = pd.Series(True, index=manifest.index)
        for column, value in equal.items():
            values = value if isinstance(value, (list, tuple, set)) else [value]
            mask &= manifest[column].isin(values)
        return int(mask.sum())

    return count


def _ffpp_counts() -> list[Count]:
    counts = []
    for compression in ("c23", "c40"):
        counts.append(Count(f"{compression} original videos", 1000,
                            _n(compression=compression, technique="real")))
        for technique in ffpp.TECHNIQUES:
            counts.append(Count(f"{compression} {technique} videos", 1000,
                                _n(compression=compression, technique=technique)))
        for split, expected in (("train", 720), ("val", 140), ("test", 140)):
            counts.append(Count(f"{compression} {split} originals (official split, "
                                f"{expected // 2} pairs)", expected,
                                _n(compression=compression, technique="real", split=split)))
    return counts


def _celebdf_source(folder: str) -> Callable[[pd.DataFrame], int]:
    # a video file's folder, or (DeepfakeBench input) its frames folder's: <folder>/frames/<video>
    def inside(path: str) -> bool:
        return folder in (Path(path).parent.name, Path(path).parent.parent.name)

    return lambda m: int(m["path"].map(inside).sum())


# The counts each dataset's release documents (see References).
OFFICIAL: dict[str, list[Count]] = {
    "ffpp": _ffpp_counts(),
    "celebdf": [
        Count("Celeb-real videos", 590, _celebdf_source("Celeb-real")),
        Count("YouTube-real videos", 300, _celebdf_source("YouTube-real")),
        Count("Celeb-synthesis videos", 5639, _celebdf_source("Celeb-synthesis")),
        Count("test videos (List_of_testing_videos.txt)", 518, _n(split="test")),
    ],
    "dfdc": [
        Count("training videos (50 parts)", 119154, _n(split=["train", "val"])),
        Count("real training videos", 19154, _n(split=["train", "val"], label=0)),
        Count("test videos (test/labels.csv)", 5000, _n(split="test")),
    ],
    "wilddeepfake": [
        Count("face sequences", 7314, _n()),
        Count("real sequences", 3805, _n(label=0)),
        Count("fake sequences", 3509, _n(label=1)),
    ],
}


def problem_kinds(problems: pd.DataFrame) -> pd.Series:
    """Problems counted by kind: the reason with names and numbers blanked out."""
    if problems.empty:
        return pd.Series(dtype=int)
    return problems["reason"].map(reason_kind).value_counts()


def needed_splits(config: Mapping) -> list[tuple[str, str, str, list | None, str]]:
    """(table row, role, faceset, techniques, split) for what every configured row reads."""
    needs = []
    for table, entries in config["tables"].items():
        for i, entry in enumerate(entries):
            row = f"{table}[{i}] {entry['source']} -> {entry['target']}"
            source = config["sources"][entry["source"]]
            target = config["targets"][entry["target"]]
            for split in ("train", "val"):
                needs.append((row, "source", source["faceset"], source["techniques"], split))
            for split in ("train", "test"):
                needs.append((row, "target", target["faceset"], target["techniques"], split))
    return needs


def buildable(config: Mapping, manifests: Mapping[str, pd.DataFrame]) -> list[dict]:
    """Per table row: can it be built? A split it reads must hold real and fake videos."""
    rows: dict[str, list[str]] = {}
    for row, role, faceset, techniques, split in needed_splits(config):
        manifest = manifests[FACESETS[faceset][0]]
        manifest = manifest[manifest["compression"] == faceset_compression(faceset)]
        chosen = manifest[select_rows(manifest, techniques, [split])]
        labels = set(chosen["label"].astype(int))
        missing = [name for label, name in ((0, "real"), (1, "fake")) if label not in labels]
        gaps = rows.setdefault(row, [])
        if missing:
            what = f"{faceset}" + (f" ({', '.join(techniques)})" if techniques else "")
            gaps.append(f"no {' or '.join(missing)} {split} videos of {what} ({role})")
    return [{"row": row, "ok": not gaps, "gaps": gaps} for row, gaps in rows.items()]


def check_data(
    roots: Mapping[str, str | Path],
    synthetic: set[str],
    settings: IndexSettings,
    config: Mapping,
    out_report: str | Path,
    deepfakebench_inputs: Mapping[str, Mapping] | None = None,
) -> str:
    """Run every reader and write (and return) the Markdown report of what was found.

    Arguments:
        roots: dataset -> root folder (the user's, or the generated synthetic stand-in).
        synthetic: the datasets whose root is the embedded synthetic benchmark.
        settings: the data stage's settings (validation carving, as the workflow does it).
        config: the validated config (tables, sources, targets).
        out_report: where the report goes (`results/data/check.md`).
        deepfakebench_inputs: dataset -> its `datasets.deepfakebench` entry, for the datasets
            given as DeepfakeBench inputs (read from their JSON instead of `roots`).
    """
    lines = ["# Data check", ""]
    manifests: dict[str, pd.DataFrame] = {}
    deepfakebench_inputs = deepfakebench_inputs or {}
    for dataset, root in roots.items():
        entry = deepfakebench_inputs.get(dataset)
        crops = None
        where = f"DeepfakeBench JSON {entry['json']}" if entry else str(root)
        lines.append(f"## {dataset}: {where}")
        try:
            if entry:
                source = deepfakebench.Source.from_config(entry)
                manifest, problems, crops = read_deepfakebench_dataset(dataset, source, settings)
            else:
                manifest, problems = read_dataset(dataset, root, settings)
        except DamlError as error:
            lines += ["", f"**Cannot be read:** {error}", ""]
            manifests[dataset] = pd.DataFrame(columns=["compression", "split", "technique", "label"])
            continue
        manifests[dataset] = manifest
        lines += ["", f"{len(manifest)} entries indexed"
                  + (f" with {len(crops)} face crops" if crops is not None else "")
                  + "; by split and label:", ""]
        counts = manifest.groupby(["compression", "split", "label"]).size()
        lines += ["| compression | split | label | videos |", "|---|---|---|---:|"]
        lines += [f"| {c} | {s} | {'fake' if int(lab) else 'real'} | {n} |"
                  for (c, s, lab), n in counts.items()]
        lines.append("")
        if dataset in synthetic:
            lines += ["Embedded synthetic stand-in: the official counts do not apply.", ""]
        else:
            lines += ["| documented | expected | found | |", "|---|---:|---:|---|"]
            for count in OFFICIAL[dataset]:
                found = count.count(manifest)
                mark = "ok" if found == count.expected else ("more" if found > count.expected else "**missing**")
                lines.append(f"| {count.what} | {count.expected} | {found} | {mark} |")
            lines.append("")
        kinds = problem_kinds(problems)
        if kinds.empty:
            lines += ["No inconsistencies.", ""]
        else:
            lines += [f"{len(problems)} inconsistencies (left out with `datasets.on_inconsistency: "
                      f"skip`, fatal with `fail`), by kind:", "", "| kind | count |", "|---|---:|"]
            lines += [f"| {kind} | {n} |" for kind, n in kinds.items()]
            lines += ["", "First ones: " + "; ".join(
                f"{p}: {r}" for p, r in problems[["path", "reason"]].head(5).itertuples(index=False)), ""]
    lines += ["## Configured tables", ""]
    verdicts = buildable(config, manifests)
    for verdict in verdicts:
        state = "can be built" if verdict["ok"] else "**cannot be built**: " + "; ".join(verdict["gaps"])
        lines.append(f"- {verdict['row']}: {state}")
    blocked = sum(not v["ok"] for v in verdicts)
    lines += ["", f"{len(verdicts) - blocked} of {len(verdicts)} table rows can be built."]
    report = "\n".join(lines) + "\n"
    write_text(out_report, report)
    log.info("data check written to %s\n%s", out_report, report)
    return report
