"""Tables 1-3 and the leave-one-technique-out companion: our numbers beside the paper's.

A table is built in tidy (long) form, one row per (train, test, method, metric), then laid out
wide for reading (`layout`), the way the paper prints it: rows are methods (grouped by training
domain in Table 3), columns are test domains and metrics.

Measured rows ("DAML (ours)", "MAML (ours)", "ERM (ours)") hold the mean and the sample standard
deviation (ddof=1) over seeds, in percent, of frame-level metrics read from each
`results/evaluate/.../metrics.json`. Each method has two: the model fine-tuned on the row's shots
(theta_d, the paper's meta-test; kind "measured") and, as a labelled companion, the trained model
as it is (kind "zero-shot", shots 0). Quoted rows hold the paper's numbers verbatim from
`daml/reference/paper_tables.csv` (the one place the paper's numbers live); the paper's own DAML
row is quoted as "DAML (paper)" and also stands beside "DAML (ours)" with the difference
ours - paper. Comparison rows ("DAML - MAML", "DAML - ERM"; kind "comparison") give the AUC
difference of the fine-tuned models with a paired bootstrap interval over test videos
(`daml.compare`).

References:
    Tables 1-3 of "Difficulty-Aware Meta-Learning for Cross-Domain Face Forgery Detection".
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from daml.compare import auc_difference, make_cell
from daml.errors import DamlError
from daml.evaluations import Evaluations
from daml.io import write_csv, write_text

log = logging.getLogger(__name__)

REFERENCE_COLUMNS = ["table", "setting", "train", "test", "method", "metric", "value"]
TIDY_COLUMNS = [
    "table", "train", "test", "source", "target", "shots", "method", "kind", "metric",
    "value", "std", "n_seeds", "per_seed", "paper", "diff", "ci_low", "ci_high",
]
NUMERIC_COLUMNS = ("value", "std", "paper", "diff", "ci_low", "ci_high")
MEASURED, ZERO_SHOT, COMPARISON = "measured", "zero-shot", "comparison"
# (a, b): rows "A - B" with the AUC difference of the fine-tuned models, when both were run
COMPARISONS = (("daml", "maml"), ("daml", "erm"))
CROSS_AVG = "Cross AVG"
METHOD_NAMES = {"daml": "DAML", "maml": "MAML", "erm": "ERM"}
PAPER_DAML = "DAML"  # the paper's method name in the reference file


@dataclass(frozen=True)
class TableSpec:
    """How one named table is read and laid out.

    Arguments:
        title: caption shown above the table.
        paper_table: number of the paper's table in the reference file (None: no paper numbers).
        metrics: metric names (upper case, as the paper prints them; read in lower case
            from metrics.json).
        cross_avg: add the column "Cross AVG": per training domain, the mean over the test
            domains other than the training one (test label != train label), computed per
            seed and then averaged.
    """

    title: str
    paper_table: int | None
    metrics: tuple[str, ...]
    cross_avg: bool


TABLES: dict[str, TableSpec] = {
    "table1": TableSpec("Table 1. In-domain detection on FF++ (train and test on the same compression)",
                        1, ("ACC", "AUC"), False),
    "table2": TableSpec("Table 2. Cross-dataset detection: trained on FF++, tested on other datasets",
                        2, ("ACC", "AUC"), False),
    "table3": TableSpec("Table 3. Cross-technique detection on FF++ c40 (AUC): train on one technique, "
                        "test on each", 3, ("AUC",), True),
    "loto": TableSpec("Companion table. Leave one technique out on FF++ c40 (AUC): meta-train on three "
                      "techniques, adapt with k shots and test on the held-out one", None, ("AUC",), False),
}


def load_reference(path: str | Path | None = None) -> pd.DataFrame:
    """Read the paper's numbers (default: the copy shipped in `daml/reference/paper_tables.csv`).

    Returns:
        DataFrame with columns table, setting, train, test, method, metric, value (percent).
    """
    if path is None:
        with resources.as_file(resources.files("daml") / "reference" / "paper_tables.csv") as ref:
            frame = pd.read_csv(ref)
        path = "daml/reference/paper_tables.csv"
    else:
        frame = pd.read_csv(path)
    missing = [c for c in REFERENCE_COLUMNS if c not in frame.columns]
    if missing:
        raise DamlError(f"{path}: reference table lacks columns {missing}; expected {REFERENCE_COLUMNS}")
    return frame


def build_table(
    name: str,
    entries: Sequence[Mapping],
    methods: Sequence[str],
    seeds: Sequence[int],
    evaluations: Evaluations,
    reference: pd.DataFrame | None,
    level: str = "frame",
) -> pd.DataFrame:
    """Collect one table in tidy form.

    Arguments:
        name: key of `TABLES` (table1, table2, table3, loto).
        entries: the config's list for this table; each has source, target, shots (> 0 for
            a fine-tuned row) and optionally paper_train / paper_test, the labels of the
            reference file (an entry without them gets no paper numbers and is labelled by
            its source and target).
        methods: our methods (daml, maml, erm), in display order.
        seeds: the seeds averaged over.
        evaluations: the evaluate stage's results (`daml.evaluations`), read at the entry's
            shots and at shots 0 (the zero-shot companion); when they hold predictions,
            comparison rows are added for the AUC of the fine-tuned models.
        reference: the paper's numbers (`load_reference()`); None for no paper rows.
        level: "frame" (the paper's level) or "video".

    Returns:
        DataFrame with `TIDY_COLUMNS`: value and std in percent (std is NaN with one seed),
        per_seed the per-seed values joined by ";", paper the paper's DAML number (fine-tuned
        DAML rows only) and diff = value - paper; comparison rows hold the difference in
        value and its interval in ci_low / ci_high. A metric that is NaN for any seed gives NaN.
    """
    if name not in TABLES:
        raise DamlError(f"tables.{name}: unknown table; known: {', '.join(TABLES)}")
    spec = TABLES[name]
    if not entries:
        raise DamlError(f"tables.{name}: no entries; list at least one source/target pair.")
    if not seeds:
        raise DamlError("seeds: empty; give at least one seed.")
    ref = _reference_for(spec, reference)
    entries = [_normalise_entry(name, i, e, ref) for i, e in enumerate(entries)]

    rows: list[dict] = []
    # per-seed values kept for Cross AVG: (train, source, method, metric, kind) -> {seed: [unseen tests]}
    unseen: dict[tuple, dict[int, list[float]]] = {}
    for entry in entries:
        for metric in spec.metrics:
            rows += _quoted_rows(name, entry, metric, ref)
            for kind, shots in _kinds(entry):
                for method in methods:
                    values = [
                        100.0 * evaluations.metric(
                            (entry["source"], entry["target"], method, seed, shots), metric, level)
                        for seed in seeds
                    ]
                    rows.append(_measured_row(name, entry, method, metric, values, ref, kind, shots))
                    if spec.cross_avg and entry["train"] != entry["test"]:  # an unseen domain
                        key = (entry["train"], entry["source"], method, metric, kind)
                        per_seed = unseen.setdefault(key, {})
                        for seed, value in zip(seeds, values):
                            per_seed.setdefault(seed, []).append(value)
    if spec.cross_avg:
        rows += _cross_avg_rows(name, entries, methods, seeds, unseen, ref)
    if evaluations.has_predictions and "AUC" in spec.metrics:
        rows += _comparison_rows(name, entries, methods, seeds, evaluations, spec)
    frame = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    log.info("%s: %d rows (%d measured)", name, len(frame), int((frame["kind"] == MEASURED).sum()))
    return frame


def _kinds(entry: dict) -> list[tuple[str, int]]:
    """(kind, shots) of an entry's measured rows: fine-tuned, then the zero-shot companion."""
    if entry["shots"] == 0:
        return [(ZERO_SHOT, 0)]
    return [(MEASURED, entry["shots"]), (ZERO_SHOT, 0)]


def _reference_for(spec: TableSpec, reference: pd.DataFrame | None) -> pd.DataFrame:
    if reference is None or spec.paper_table is None:
        return pd.DataFrame(columns=REFERENCE_COLUMNS)
    return reference[reference["table"].astype(int) == spec.paper_table]


def _normalise_entry(name: str, i: int, entry: Mapping, ref: pd.DataFrame) -> dict:
    for key in ("source", "target", "shots"):
        if key not in entry or entry[key] is None:
            raise DamlError(f"tables.{name}[{i}]: missing key {key!r}")
    out = dict(entry)
    out["shots"] = int(entry["shots"])
    out["train"] = entry.get("paper_train") or entry["source"]
    out["test"] = entry.get("paper_test") or entry["target"]
    labelled = bool(entry.get("paper_train") or entry.get("paper_test"))
    if labelled and len(ref) and not ((ref["train"] == out["train"]) & (ref["test"] == out["test"])).any():
        pairs = sorted(set(zip(ref["train"], ref["test"])))
        raise DamlError(
            f"tables.{name}[{i}]: paper_train={out['train']!r}, paper_test={out['test']!r} match no row "
            f"of the paper's table; use one of {pairs}"
        )
    return out


def _paper_value(ref: pd.DataFrame, train: str, test: str, method: str, metric: str) -> float:
    hit = ref[(ref["train"] == train) & (ref["test"] == test) & (ref["method"] == method)
              & (ref["metric"] == metric)]
    return float(hit["value"].iloc[0]) if len(hit) else float("nan")


def _quoted_rows(name: str, entry: dict, metric: str, ref: pd.DataFrame, test: str | None = None) -> list[dict]:
    test = test or entry["test"]
    hits = ref[(ref["train"] == entry["train"]) & (ref["test"] == test) & (ref["metric"] == metric)]
    rows = []
    for _, hit in hits.iterrows():
        method = "DAML (paper)" if hit["method"] == PAPER_DAML else hit["method"]
        rows.append(_row(name, entry, test, method, "quoted", metric, float(hit["value"]), float("nan"),
                         0, "", float("nan"), entry["shots"]))
    return rows


def method_name(method: str) -> str:
    """A method's display name: "DAML" for "daml"; a method without one is upper-cased."""
    return METHOD_NAMES.get(method, method.upper())


def method_label(method: str) -> str:
    """How one of our methods is named in a table: "DAML (ours)"."""
    return f"{method_name(method)} (ours)"


def _measured_row(name: str, entry: dict, method: str, metric: str, values: list[float],
                  ref: pd.DataFrame, kind: str, shots: int, test: str | None = None) -> dict:
    test = test or entry["test"]
    mean, std = _mean_std(values)
    # the paper reports its fine-tuned model, so only that row is set against the paper
    paper = (_paper_value(ref, entry["train"], test, PAPER_DAML, metric)
             if method == "daml" and kind == MEASURED else float("nan"))
    return _row(name, entry, test, method_label(method), kind, metric, mean, std, len(values),
                ";".join(f"{v:.4f}" for v in values), paper, shots)


def _row(name, entry, test, method, kind, metric, value, std, n, per_seed, paper, shots,
         ci=(float("nan"), float("nan"))) -> dict:
    return {
        "table": name, "train": entry["train"], "test": test, "source": entry["source"],
        "target": entry["target"] if test == entry["test"] else "", "shots": shots,
        "method": method, "kind": kind, "metric": metric, "value": value, "std": std,
        "n_seeds": n, "per_seed": per_seed, "paper": paper, "diff": value - paper,
        "ci_low": ci[0], "ci_high": ci[1],
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    if np.isnan(array).any():
        return float("nan"), float("nan")
    std = float(array.std(ddof=1)) if len(array) > 1 else float("nan")
    return float(array.mean()), std


def _train_groups(entries: Sequence[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for entry in entries:
        groups.setdefault(entry["train"], []).append(entry)
    return groups


def _cross_avg_rows(name, entries, methods, seeds, unseen, ref) -> list[dict]:
    rows = []
    for train, group in _train_groups(entries).items():
        entry = group[0]
        for metric in TABLES[name].metrics:
            if not any(key[0] == train and key[3] == metric for key in unseen):
                continue
            rows += _quoted_rows(name, entry, metric, ref, test=CROSS_AVG)
            for kind, shots in _kinds(entry):
                for method in methods:
                    per_seed = unseen[(train, entry["source"], method, metric, kind)]
                    values = [float(np.mean(per_seed[s])) for s in seeds]
                    rows.append(_measured_row(name, entry, method, metric, values, ref, kind, shots,
                                              test=CROSS_AVG))
    return rows


def _comparison_rows(name, entries, methods, seeds, evaluations, spec) -> list[dict]:
    """AUC differences of the fine-tuned models, per cell and for Cross AVG, with intervals."""

    def runs(entry: dict, method: str) -> list[pd.DataFrame]:
        return [evaluations.predictions((entry["source"], entry["target"], method, seed,
                                         entry["shots"])) for seed in seeds]

    rows = []
    pairs = [(a, b) for a, b in COMPARISONS if a in methods and b in methods]
    for a, b in pairs:
        label = f"{method_name(a)} - {method_name(b)}"
        cells: dict[tuple[str, str], list] = {}
        for entry in entries:
            what = f"tables.{name}: {entry['source']} -> {entry['target']}, {a} against {b}"
            cell = make_cell(runs(entry, a), runs(entry, b), what)
            cells[(entry["train"], entry["test"])] = [cell]
            if spec.cross_avg and entry["train"] != entry["test"]:
                cells.setdefault((entry["train"], CROSS_AVG), []).append(cell)
        groups = _train_groups(entries)
        for (train, test), group_cells in cells.items():
            entry = groups[train][0] if test == CROSS_AVG else next(
                e for e in groups[train] if e["test"] == test)
            diff = auc_difference(group_cells)
            rows.append(_row(name, entry, test, label, COMPARISON, "AUC", 100.0 * diff.value,
                             float("nan"), len(seeds), "", float("nan"), entry["shots"],
                             (100.0 * diff.low, 100.0 * diff.high)))
    return rows


# ---------------------------------------------------------------------------------------------
# wide layout for reading: markdown, LaTeX and the HTML report share it


@dataclass
class Layout:
    """A table laid out for reading.

    Attributes:
        title: caption.
        index_names: names of the row-label columns (["Train", "Method", "Row"] or without Train).
        columns: (test, metric) pairs, in order.
        rows: dicts with "index" (labels), "kind" (quoted / measured / difference) and
            "cells" (strings, one per column; "" where the row has no number, "n/a" for NaN).
        notes: sentences printed below the table.
    """

    title: str
    index_names: list[str]
    columns: list[tuple[str, str]]
    rows: list[dict]
    notes: list[str]


KIND_LABELS = {"quoted": "quoted (paper)", "difference": "difference",
               COMPARISON: "AUC difference [95% CI]"}


def _fmt(value: float, std: float = float("nan"), signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    if not math.isnan(std):
        text += f" ± {std:.2f}"
    return text


def _fmt_interval(value: float, low: float, high: float) -> str:
    """"+1.20 [-0.40, +2.85]", with " *" when the interval excludes zero."""
    if any(isinstance(v, float) and math.isnan(v) for v in (value, low, high)):
        return "n/a"
    mark = " *" if low > 0 or high < 0 else ""
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]{mark}"


def _row_label(kind: str, sub: pd.DataFrame) -> str:
    seeds = int(sub["n_seeds"].max())
    if kind == MEASURED:
        shots = "/".join(str(k) for k in sorted(set(int(k) for k in sub["shots"])))
        return f"fine-tuned, {shots} shots ({seeds} seeds)"
    if kind == ZERO_SHOT:
        return f"no fine-tuning ({seeds} seeds)"
    return KIND_LABELS[kind]


def layout(df: pd.DataFrame) -> Layout:
    """Lay a tidy table out wide: rows are methods (per training domain where needed).

    Rows are grouped by training domain (a "Train" column) when some test domain is met under
    several training domains (Table 3) or when one training domain differs from the tests
    (Table 2); otherwise (Table 1, leave-one-out) one row per method. Within a group: quoted
    rows in the paper's order; then per method of ours its fine-tuned row, its zero-shot
    companion, and after DAML's fine-tuned row "DAML: ours - paper"; then the comparisons.
    """
    if df.empty:
        raise DamlError("cannot lay out an empty table")
    name = str(df["table"].iloc[0])
    spec = TABLES.get(name)
    title = spec.title if spec else name
    trains_per_test = df.groupby("test")["train"].nunique()
    one_train_elsewhere = df["train"].nunique() == 1 and bool((df["train"] != df["test"]).any())
    grouped = bool((trains_per_test > 1).any()) or one_train_elsewhere
    columns = list(dict.fromkeys(zip(df["test"], df["metric"])))
    # Cross AVG last, tests in first-seen order, metrics in spec order within a test
    tests = [t for t in dict.fromkeys(df["test"]) if t != CROSS_AVG] + (
        [CROSS_AVG] if CROSS_AVG in set(df["test"]) else [])
    metric_order = list(spec.metrics) if spec else list(dict.fromkeys(df["metric"]))
    columns = [(t, m) for t in tests for m in metric_order if (t, m) in set(columns)]
    col_index = {c: i for i, c in enumerate(columns)}

    groups = list(dict.fromkeys(df["train"])) if grouped else [None]
    rows: list[dict] = []
    for train in groups:
        part = df if train is None else df[df["train"] == train]
        order = [(m, "quoted") for m in dict.fromkeys(part.loc[part["kind"] == "quoted", "method"])]
        for method in dict.fromkeys(part.loc[part["kind"].isin([MEASURED, ZERO_SHOT]), "method"]):
            order += [(method, MEASURED), (method, ZERO_SHOT)]
        order += [(m, COMPARISON) for m in dict.fromkeys(part.loc[part["kind"] == COMPARISON, "method"])]
        for method, kind in order:
            sub = part[(part["method"] == method) & (part["kind"] == kind)]
            if sub.empty:
                continue
            cells = [""] * len(columns)
            diffs = [""] * len(columns)
            has_paper = False
            for _, r in sub.iterrows():
                i = col_index[(r["test"], r["metric"])]
                if kind == COMPARISON:
                    cells[i] = _fmt_interval(r["value"], r["ci_low"], r["ci_high"])
                    continue
                cells[i] = _fmt(r["value"], r["std"] if kind != "quoted" else float("nan"))
                if kind == MEASURED and not pd.isna(r["paper"]):
                    has_paper = True
                    diffs[i] = _fmt(r["diff"], signed=True)
            prefix = [train] if grouped else []
            rows.append({"index": prefix + [method, _row_label(kind, sub)], "kind": kind, "cells": cells})
            if has_paper:
                base = method.replace(" (ours)", "")
                rows.append({"index": prefix + [f"{base}: ours - paper", KIND_LABELS["difference"]],
                             "kind": "difference", "cells": diffs})
    return Layout(title, (["Train"] if grouped else []) + ["Method", "Row"], columns, rows,
                  _notes(df))


def _notes(df: pd.DataFrame) -> list[str]:
    notes = ["Numbers are percentages of frame-level metrics (ACC at threshold 0.5, ROC AUC)."]
    measured = df[df["kind"].isin([MEASURED, ZERO_SHOT])]
    if len(measured):
        notes.append("Our rows: mean ± sample standard deviation (ddof=1) over seeds; a cell is n/a "
                     "when a metric is undefined for some seed.")
    if (df["kind"] == MEASURED).any():
        shots = sorted(set(int(s) for s in df.loc[df["kind"] == MEASURED, "shots"]))
        notes.append("Fine-tuned rows score the model after the meta-test fine-tuning on "
                     + "/".join(str(s) for s in shots) + " labelled faces per class of the target's "
                     "train split (none from a video that shares a person, or under the target's "
                     "leak_rule footage a real clip, with its test videos); rows without "
                     "fine-tuning score the trained model as it is.")
    if (df["kind"] == "quoted").any():
        notes.append("Quoted rows are the paper's numbers, not rerun here; 'ours - paper' sets our "
                     "fine-tuned DAML against them.")
    if CROSS_AVG in set(df["test"]):
        notes.append("Cross AVG: mean over the test techniques other than the training one, "
                     "computed per seed, then averaged over seeds.")
    comparisons = df[df["kind"] == COMPARISON]
    if len(comparisons):
        notes.append("A - B rows: AUC of A minus AUC of B, both fine-tuned, averaged over seeds, with "
                     "a 95% paired bootstrap interval over test videos (real and fake videos resampled "
                     "separately, seeds pooled); * marks an interval that excludes zero.")
        clear = comparisons[(comparisons["ci_low"] > 0) | (comparisons["ci_high"] < 0)]
        if clear.empty:
            notes.append("No difference between methods is distinguishable from zero.")
        else:
            listed = "; ".join(
                f"{r.method} on {r.test}" + (f" (trained on {r.train})" if r.train != r.test else "")
                + f": {r.value:+.2f}" for r in clear.itertuples())
            notes.append(f"Distinguishable from zero: {listed}.")
    return notes


def to_markdown(lay: Layout) -> str:
    """A GitHub-flavoured markdown table with the title above and the notes below."""
    header = lay.index_names + [f"{t} {m}" for t, m in lay.columns]
    align = ["---"] * len(lay.index_names) + ["---:"] * len(lay.columns)
    lines = [f"**{lay.title}**", "", _md_line(header), _md_line(align)]
    for row in lay.rows:
        lines.append(_md_line([str(x) for x in row["index"]] + row["cells"]))
    lines += [""] + [f"- {n}" for n in lay.notes]
    return "\n".join(lines) + "\n"


def _md_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _tex(text: str) -> str:
    out = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
    return out.replace("±", r"$\pm$")


def to_latex(lay: Layout) -> str:
    """A booktabs LaTeX table (needs \\usepackage{booktabs}); quoted rows in italics."""
    n_index = len(lay.index_names)
    tests = list(dict.fromkeys(t for t, _ in lay.columns))
    spec = "l" * n_index + "r" * len(lay.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(lay.title)}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    top = [""] * n_index
    rules = []
    col = n_index + 1
    for test in tests:
        width = sum(1 for t, _ in lay.columns if t == test)
        top.append(rf"\multicolumn{{{width}}}{{c}}{{{_tex(test)}}}")
        rules.append(rf"\cmidrule(lr){{{col}-{col + width - 1}}}")
        col += width
    lines.append(" & ".join(top) + r" \\")
    lines.append(" ".join(rules))
    lines.append(" & ".join([_tex(n) for n in lay.index_names] + [_tex(m) for _, m in lay.columns]) + r" \\")
    lines.append(r"\midrule")
    for row in lay.rows:
        cells = [_tex(x) for x in row["index"]] + [_tex(c) for c in row["cells"]]
        if row["kind"] == "quoted":
            cells = [rf"\textit{{{c}}}" if c else c for c in cells]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "", r"\smallskip", r"\footnotesize"]
    lines += [_tex(n) for n in lay.notes]
    lines += [r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, out_csv: str | Path, out_md: str | Path, out_tex: str | Path) -> None:
    """Write the tidy CSV and the wide markdown and LaTeX versions, each atomically."""
    lay = layout(df)
    write_csv(out_csv, df)
    write_text(out_md, to_markdown(lay))
    write_text(out_tex, to_latex(lay))


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a tidy table written by `write_table` (keeps empty strings empty)."""
    path = Path(path)
    if not path.is_file():
        raise DamlError(f"{path}: table CSV is missing; build it with `snakemake {path}`")
    frame = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in NUMERIC_COLUMNS})
    missing = [c for c in TIDY_COLUMNS if c not in frame.columns]
    if missing:
        raise DamlError(f"{path}: not a table written by daml.tables (missing columns {missing})")
    for column in NUMERIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


# ---------------------------------------------------------------------------------------------
# the stage's entry point (scripts/make_table.py)


def make_table(name: str, entries: Sequence[Mapping], methods: Sequence[str], seeds: Sequence[int],
               metrics_paths: Sequence[str | Path], out_csv: str | Path, out_md: str | Path,
               out_tex: str | Path, predictions_paths: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Build table `name` from the evaluate stage's files and write CSV, markdown and LaTeX.

    Arguments:
        name: table1, table2, table3 or loto (the config key under `tables`).
        entries, methods, seeds: the config's `tables.<name>`, `methods` and `seeds`.
        metrics_paths: every metrics.json of the evaluate stage the table reads (any order).
        out_csv, out_md, out_tex: outputs.
        predictions_paths: the predictions.csv beside them; when given, the table gets the
            methods' AUC comparisons.

    Returns:
        The tidy table.
    """
    evaluations = Evaluations(metrics_paths, predictions_paths)
    frame = build_table(name, entries, methods, seeds, evaluations, load_reference())
    write_table(frame, out_csv, out_md, out_tex)
    return frame
