"""Tables 1-3 and the leave-one-technique-out companion: our numbers beside the paper's.

A table is built in tidy (long) form, one row per (train, test, method, metric), then laid out
wide for reading (`layout`), the way the paper prints it: rows are methods (grouped by training
domain in Table 3), columns are test domains and metrics.

Measured rows ("DAML (ours)", "MAML (ours)", "ERM (ours)") hold the mean over seeds, in percent,
of frame-level metrics read from each `results/evaluate/.../metrics.json` (each seed's value the
mean over its shot episodes), the sample standard deviation over seeds, and, from the
predictions beside them, a 95% interval that holds training seeds, shot episodes and the test
population (`daml.stats`). Each method has two: the model fine-tuned on the row's shots
(theta_d, the paper's meta-test; kind "measured") and, as a labelled companion, the trained model
as it is (kind "zero-shot", shots 0). Quoted rows hold the paper's numbers verbatim from
`daml/reference/paper_tables.csv` (the one place the paper's numbers live); the paper's own DAML
row is quoted as "DAML (paper)" and also stands beside "DAML (ours)" with the difference
ours - paper. Comparison rows ("DAML - MAML", "DAML - ERM"; kind "comparison") give the AUC
difference of the fine-tuned models, paired by seed and episode, with the same kind of interval
and the smallest difference the data could detect. Numbers that average several cells (Cross
AVG, the table's "Mean") are estimated jointly: test videos shared by the cells are resampled
once.

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
from scipy import stats

from daml.errors import DamlError
from daml.methods import ALGORITHM_NAMES
from daml.evaluations import Evaluations
from daml.io import write_csv, write_text
from daml.stats.intervals import (
    CONFIDENCE, N_RESAMPLES, Analysis, Estimate, cell_from_predictions, difference, mean_of,
)
from daml.stats.power import detectable_difference

log = logging.getLogger(__name__)

REFERENCE_COLUMNS = ["table", "setting", "train", "test", "method", "metric", "value"]
TIDY_COLUMNS = [
    "table", "train", "test", "source", "target", "shots", "method", "kind", "metric",
    "value", "std", "n_seeds", "per_seed", "paper", "diff", "ci_low", "ci_high", "se", "df",
    "noise", "n_episodes", "n_units", "detectable",
]
NUMERIC_COLUMNS = ("value", "std", "paper", "diff", "ci_low", "ci_high", "se", "df",
                   "n_episodes", "n_units", "detectable")
MEASURED, ZERO_SHOT, COMPARISON = "measured", "zero-shot", "comparison"
# rows "DAML - B" with the AUC difference of the fine-tuned models, for every other method B
COMPARED = "daml"
CROSS_AVG = "Cross AVG"
MEAN, ALL = "Mean", "All"  # a table's mean over its cells, and its training label when mixed
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
    methods: Sequence[str] | Mapping[str, str],
    seeds: Sequence[int],
    evaluations: Evaluations,
    reference: pd.DataFrame | None,
    level: str = "frame",
    n_resamples: int = N_RESAMPLES,
) -> pd.DataFrame:
    """Collect one table in tidy form.

    Arguments:
        name: key of `TABLES` (table1, table2, table3, loto).
        entries: the config's list for this table; each has source, target, shots (> 0 for
            a fine-tuned row) and optionally paper_train / paper_test, the labels of the
            reference file (an entry without them gets no paper numbers and is labelled by
            its source and target).
        methods: our methods (daml, maml, erm, baselines), in display order, or a mapping
            of each to its display name ("Xception"; default `method_labels`).
        seeds: the seeds averaged over.
        evaluations: the evaluate stage's results (`daml.evaluations`), read at the entry's
            shots and at shots 0 (the zero-shot companion); when they hold predictions,
            every measured number gets its interval and the comparison rows are added.
        reference: the paper's numbers (`load_reference()`); None for no paper rows.
        level: "frame" (the paper's level) or "video"; intervals are frame level only.
        n_resamples: of the cluster bootstrap (`daml.stats`).

    Returns:
        DataFrame with `TIDY_COLUMNS`: value in percent (the mean over seeds of each seed's
        episode mean), std the sample standard deviation over seeds (NaN with one seed),
        per_seed the per-seed values joined by ";", ci_low / ci_high / se / df / noise the
        interval and what it holds (`daml.stats.intervals`), detectable the smallest
        difference it could detect (`daml.stats.power`, comparison rows), paper the
        paper's DAML number (fine-tuned DAML rows only) and diff = value - paper. A metric
        that is NaN for any seed gives NaN.
    """
    if name not in TABLES:
        raise DamlError(f"tables.{name}: unknown table; known: {', '.join(TABLES)}")
    spec = TABLES[name]
    if not entries:
        raise DamlError(f"tables.{name}: no entries; list at least one source/target pair.")
    if not seeds:
        raise DamlError("seeds: empty; give at least one seed.")
    labels = method_labels(methods)
    methods = list(labels)
    ref = _reference_for(spec, reference)
    entries = [_normalise_entry(name, i, e, ref) for i, e in enumerate(entries)]
    groups = _aggregates(name, entries)
    analyses = (
        {metric: _analysis(entries, methods, seeds, evaluations, metric, n_resamples)
         for metric in spec.metrics}
        if evaluations.has_predictions and level == "frame" else {}
    )

    def values(entry, method, metric, shots):
        return [100.0 * evaluations.metric((entry["source"], entry["target"], method, seed, shots),
                                           metric, level) for seed in seeds]

    rows: list[dict] = []
    for metric in spec.metrics:
        analysis = analyses.get(metric)
        for entry in entries:
            rows += _quoted_rows(name, entry, metric, ref)
            for kind, shots in _kinds(entry):
                for method in methods:
                    estimate = _estimate(analysis, mean_of(method, [_cell(entry, shots)]))
                    rows.append(_measured_row(name, entry, method, metric,
                                              values(entry, method, metric, shots), ref, kind,
                                              shots, estimate=estimate, label=labels[method]))
        for train, test, members in groups:
            entry = _aggregate_entry(train, test, members)
            if test == CROSS_AVG:
                rows += _quoted_rows(name, members[0], metric, ref, test=CROSS_AVG)
            for kind, shots in _kinds(members[0]):
                for method in methods:
                    per_member = [values(e, method, metric, e["shots"] if shots else 0)
                                  for e in members]
                    cells = [_cell(e, e["shots"] if shots else 0) for e in members]
                    rows.append(_measured_row(
                        name, entry, method, metric, list(np.mean(per_member, axis=0)), ref,
                        kind, shots, test=test, estimate=_estimate(analysis, mean_of(method, cells)),
                        label=labels[method]))
        if analysis is not None and metric == "AUC":
            rows += _comparison_rows(name, entries, groups, labels, analysis)
    frame = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    log.info("%s: %d rows (%d measured)", name, len(frame), int((frame["kind"] == MEASURED).sum()))
    return frame


def _cell(entry: Mapping, shots: int) -> tuple[str, str, int]:
    """The name of a table cell in an `Analysis`: (source, target, shots)."""
    return (entry["source"], entry["target"], int(shots))


def _aggregates(name: str, entries: Sequence[dict]) -> list[tuple[str, str, list[dict]]]:
    """The numbers that average several cells: (train label, test label, entries).

    Table 3: per training technique its Cross AVG (the unseen techniques), and the table's
    mean over every unseen cell (train "All"). Other tables with more than one row: the
    mean over their rows (test "Mean"; train the rows' common training domain, or "All").
    """
    out = []
    if TABLES[name].cross_avg:
        unseen = [e for e in entries if e["train"] != e["test"]]
        for train, group in _train_groups(unseen).items():
            out.append((train, CROSS_AVG, group))
        if len(_train_groups(unseen)) > 1:
            out.append((ALL, MEAN, unseen))
    elif len(entries) > 1:
        trains = {e["train"] for e in entries}
        out.append((trains.pop() if len(trains) == 1 else ALL, MEAN, list(entries)))
    return out


def _aggregate_entry(train: str, test: str, members: Sequence[dict]) -> dict:
    """The entry an aggregate's rows are labelled with: its members' source when they share
    one, no single target."""
    sources = {e["source"] for e in members}
    return {**members[0], "train": train, "test": test, "target": "",
            "source": sources.pop() if len(sources) == 1 else ""}


def _analysis(entries, methods, seeds, evaluations, metric, n_resamples) -> Analysis:
    """Every cell of the table (each entry fine-tuned and as trained), resampled jointly."""
    cells = {}
    for entry in entries:
        for _, shots in _kinds(entry):
            what = f"{entry['source']} -> {entry['target']} at {shots} shots"
            runs = {method: {seed: evaluations.predictions(
                (entry["source"], entry["target"], method, seed, shots)) for seed in seeds}
                for method in methods}
            cells[_cell(entry, shots)] = cell_from_predictions(runs, what)
    return Analysis(cells, metric.lower(), n_resamples)


def _estimate(analysis: Analysis | None, terms) -> Estimate | None:
    """A measured number in percent, its interval cut to [0, 100]."""
    return None if analysis is None else analysis.estimate(terms).scaled(100.0).clipped(0, 100)


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
    return ALGORITHM_NAMES.get(method, method.upper())


def method_labels(methods: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """Each method's display name: as given (`MethodSpec.label`), else `method_name`."""
    if isinstance(methods, Mapping):
        return {m: label or method_name(m) for m, label in methods.items()}
    return {m: method_name(m) for m in methods}


def comparisons(methods: Sequence[str]) -> list[tuple[str, str]]:
    """The compared pairs: DAML against every other method that was run."""
    return [(COMPARED, b) for b in methods if b != COMPARED] if COMPARED in methods else []


def _measured_row(name: str, entry: dict, method: str, metric: str, values: list[float],
                  ref: pd.DataFrame, kind: str, shots: int, test: str | None = None,
                  estimate: Estimate | None = None, label: str | None = None) -> dict:
    test = test or entry["test"]
    if estimate is not None:  # the predictions' numbers, those the interval is about
        values = list(estimate.per_seed)
    mean, std = _mean_std(values)
    label = label or method_name(method)
    # the paper reports its fine-tuned DAML; a baseline trained here is set against the
    # paper's quoted number of the method it is named after ("Xception"), if any
    paper = (_paper_value(ref, entry["train"], test, PAPER_DAML if method == COMPARED else label,
                          metric) if kind == MEASURED else float("nan"))
    return _row(name, entry, test, f"{label} (ours)", kind, metric, mean, std, len(values),
                ";".join(f"{v:.4f}" for v in values), paper, shots, estimate)


def _row(name, entry, test, method, kind, metric, value, std, n, per_seed, paper, shots,
         estimate: Estimate | None = None) -> dict:
    nan = float("nan")
    return {
        "table": name, "train": entry["train"], "test": test, "source": entry["source"],
        "target": entry["target"] if test == entry["test"] else "", "shots": shots,
        "method": method, "kind": kind, "metric": metric, "value": value, "std": std,
        "n_seeds": n, "per_seed": per_seed, "paper": paper, "diff": value - paper,
        "ci_low": estimate.low if estimate else nan, "ci_high": estimate.high if estimate else nan,
        "se": estimate.se if estimate else nan, "df": estimate.df if estimate else nan,
        "noise": "+".join(estimate.noise) if estimate else "",
        "n_episodes": estimate.n_episodes if estimate else nan,
        "n_units": estimate.n_units if estimate else nan,
        "detectable": detectable_difference(estimate) if estimate and kind == COMPARISON else nan,
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


def _comparison_rows(name, entries, groups, labels: Mapping[str, str], analysis: Analysis) -> list[dict]:
    """AUC differences of the fine-tuned models per cell and per aggregate, with intervals."""
    rows = []
    for a, b in comparisons(list(labels)):
        label = f"{labels[a]} - {labels[b]}"
        for entry in entries:
            estimate = analysis.estimate(difference(a, b, [_cell(entry, entry["shots"])]))
            rows.append(_comparison_row(name, entry, entry["test"], label, estimate))
        for train, test, members in groups:
            estimate = analysis.estimate(
                difference(a, b, [_cell(e, e["shots"]) for e in members]))
            rows.append(_comparison_row(name, _aggregate_entry(train, test, members), test,
                                        label, estimate))
    return rows


def _comparison_row(name, entry, test, label, estimate: Estimate) -> dict:
    estimate = estimate.scaled(100.0).clipped(-100, 100)  # percent points of AUC
    return _row(name, entry, test, label, COMPARISON, "AUC", estimate.value, float("nan"),
                estimate.n_seeds, ";".join(f"{v:.4f}" for v in estimate.per_seed), float("nan"),
                entry["shots"], estimate)


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


def _spread(row) -> float:
    """What a measured cell's ± shows: the half-width of its 95% interval before it is cut
    to [0, 100] (so a cell whose interval spans the whole range says so), or without
    predictions the standard deviation over seeds."""
    if pd.isna(row["ci_low"]) or pd.isna(row["se"]):
        return row["std"]
    if not np.isfinite(row["df"]):
        return float(stats.norm.ppf(0.5 + CONFIDENCE / 2) * row["se"])
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, row["df"]) * row["se"])


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
    # tests in first-seen order, then Cross AVG and Mean; metrics in spec order within a test
    last = [t for t in (CROSS_AVG, MEAN) if t in set(df["test"])]
    tests = [t for t in dict.fromkeys(df["test"]) if t not in last] + last
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
                cells[i] = _fmt(r["value"], _spread(r) if kind != "quoted" else float("nan"))
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
    intervals = bool(df["ci_low"].notna().any())
    if len(measured) and intervals:
        notes.append(_interval_note(df))
    elif len(measured):
        notes.append("Our rows: mean ± sample standard deviation (ddof=1) over seeds; a cell is n/a "
                     "when a metric is undefined for some seed.")
    if (df["kind"] == MEASURED).any():
        shots = sorted(set(int(s) for s in df.loc[df["kind"] == MEASURED, "shots"]))
        episodes = sorted({int(e) for e in df.loc[df["kind"] == MEASURED, "n_episodes"].dropna()})
        drawn = (f", each the mean over {'/'.join(map(str, episodes))} independent draws of the "
                 "shots (episodes, the same for every method)" if episodes else "")
        notes.append("Fine-tuned rows score the model after the meta-test fine-tuning on "
                     + "/".join(str(s) for s in shots) + " labelled faces per class of the target's "
                     "train split (none from a video that shares a person, or under the target's "
                     f"leak_rule footage a real clip, with its test videos){drawn}; rows without "
                     "fine-tuning score the trained model as it is.")
    if (df["kind"] == "quoted").any():
        notes.append("Quoted rows are the paper's numbers, not rerun here; 'ours - paper' sets our "
                     "fine-tuned DAML against them.")
    if CROSS_AVG in set(df["test"]):
        notes.append("Cross AVG: mean over the test techniques other than the training one, "
                     "computed per seed, then averaged over seeds.")
    if MEAN in set(df["test"]):
        notes.append("Mean: the mean over the table's cells"
                     + (" (every unseen technique of every training technique)"
                        if CROSS_AVG in set(df["test"]) else "")
                     + ", computed per seed; its interval resamples the shared test videos once.")
    comparisons = df[df["kind"] == COMPARISON]
    if len(comparisons):
        notes.append("A - B rows: AUC of A minus AUC of B, both fine-tuned, paired by seed and "
                     "episode (same initial weights, same shots), with the 95% interval of the "
                     "cells; * marks an interval that excludes zero.")
        clear = comparisons[(comparisons["ci_low"] > 0) | (comparisons["ci_high"] < 0)]
        if clear.empty:
            notes.append("No difference between methods is distinguishable from zero.")
        else:
            listed = "; ".join(
                f"{r.method} on {r.test}" + (f" (trained on {r.train})" if r.train != r.test else "")
                + f": {r.value:+.2f}" for r in clear.itertuples())
            notes.append(f"Distinguishable from zero: {listed}.")
        if power_note(df):
            notes.append(power_note(df))
    return notes


def _interval_note(df: pd.DataFrame) -> str:
    rows = df[df["ci_low"].notna()]
    seeds = int(rows["n_seeds"].max())
    noise = sorted(set(rows["noise"]), key=len)[-1].replace("+", ", ")
    units = f"{int(rows['n_units'].min())}-{int(rows['n_units'].max())}"
    text = (f"Our rows: mean over {seeds} seed{'s' if seeds > 1 else ''} ± the half-width of a 95% "
            f"interval (before it is cut to 0-100 in the CSV) that holds {noise} (a cluster bootstrap over {units} groups of test videos "
            "sharing a person or footage, the seed spread at its own t; daml.stats); a cell is n/a "
            "when a metric is undefined for some seed.")
    if seeds == 1:
        text += " With one seed the interval holds no training noise."
    elif seeds <= 3:
        t = stats.t.ppf(0.975, seeds - 1)
        text += (f" With {seeds} seeds the seed part has {seeds - 1} degree"
                 f"{'s' if seeds > 2 else ''} of freedom (t = {t:.1f}): the intervals are wide "
                 "unless the seeds agree, and only a large difference can be told from zero.")
    return text


def power_note(df: pd.DataFrame) -> str:
    """The smallest AUC difference the table's data could detect (80% power, 5% level)."""
    comparisons = df[(df["kind"] == COMPARISON) & df["detectable"].notna()]
    parts = []
    for method, rows in comparisons.groupby("method", sort=False):
        cells = rows[~rows["test"].isin([CROSS_AVG, MEAN])]
        summary = rows[rows["test"] == MEAN]
        text = f"{method}: {cells['detectable'].median():.1f} for a typical cell"
        if len(summary):
            text += f", {summary['detectable'].iloc[0]:.1f} for the table's mean"
        parts.append(text)
    return ("Smallest AUC difference (points) these data could detect with 80% power at the 5% "
            "level: " + "; ".join(parts) + ".") if parts else ""


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


def make_table(name: str, entries: Sequence[Mapping], methods: Sequence[str] | Mapping[str, str],
               seeds: Sequence[int],
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
