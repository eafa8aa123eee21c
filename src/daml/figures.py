"""Figures 2 and 3 of the paper, and AUC against the number of target shots.

- `figure2`: meta-training loss curves, MAML against DAML (paper Fig. 2), from each seed's
  `results/train/{source}/{method}/seed{seed}/history.csv`.
- `figure3`: validation AUC and ACC over training iterations, MAML against DAML (paper Fig. 3),
  from each seed's `validation.csv`.
- `figure_shots`: test AUC against the number of labelled target samples used for fine-tuning,
  one panel per target, from the evaluation `metrics.json` files.
- `forest`: every DAML - MAML and DAML - ERM difference of the tables, cell by cell, with its
  interval (a forest plot), from `results/tables/*.csv`.

Every curve is the mean over seeds with a band from the lowest to the highest seed (the
"spread"; with two seeds a standard deviation says little more). The forest plot draws the
tables' own intervals (`daml.stats`). Figures are drawn on
`matplotlib.figure.Figure` objects (the Agg canvas, no pyplot state, no display needed) and
written as PNG and PDF, each atomically.

References:
    Fig. 2 and Fig. 3 of "Difficulty-Aware Meta-Learning for Cross-Domain Face Forgery Detection".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from daml.errors import DamlError
from daml.io import atomic_path
from daml.config import settings_from
from daml.evaluations import Evaluations
from daml import tables as _tables
from daml.tables import method_name

log = logging.getLogger(__name__)

PALETTE = dict(zip(("daml", "maml", "erm"), sns.color_palette("colorblind", 3)))
STYLE = "whitegrid"
DPI = 150  # PNG resolution: sharp in the HTML report at page width; the PDFs are vector


@dataclass(frozen=True)
class FigureSettings:
    """Settings of the figures stage (config section `figures`).

    Arguments:
        curves_source: training source whose runs Figures 2 and 3 show (an FF++ source).
        shots_source: training source of the AUC-against-shots figure.
        shots_targets: targets shown in the AUC-against-shots figure, one panel each.
        shots: numbers of labelled target faces per class on its x axis.
        smooth_window: width, in meta-iterations, of the trailing rolling mean applied to each
            seed's loss curve in Figure 2 (1 = no smoothing).
    """

    curves_source: str
    shots_source: str
    shots_targets: list[str]
    shots: list[int]
    smooth_window: int


def caption(name: str, settings: FigureSettings | None = None) -> str:
    """The caption of a figure for the report (mentions the settings that shape it)."""
    window = f"a trailing rolling mean over {settings.smooth_window} iterations" if settings else \
        "a trailing rolling mean"
    source = f" on {settings.curves_source}" if settings else ""
    captions = {
        "figure2": (f"Figure 2. Meta-training loss, MAML against DAML{source}. Left: mean query loss of "
                    "the tasks of an iteration (unweighted cross-entropy, comparable between methods). "
                    "Right: the outer objective each method minimises (MAML: sum of query losses, eq. 4; "
                    f"DAML: sum of L·sigmoid(L), eq. 5). Each seed smoothed with {window}; line: mean "
                    "over seeds, band: lowest to highest seed; dotted lines: learning-rate drops."),
        "figure3": (f"Figure 3. Validation AUC and ACC (frame level) during meta-training, MAML against "
                    f"DAML{source}, same data and schedule. Solid: the score model selection uses, "
                    "of a copy fine-tuned by the meta-test rule on labelled faces of the source's train "
                    "split; dashed: the same weights without fine-tuning. Line: mean over seeds, band: "
                    "lowest to highest seed."),
        "figure_shots": ("Test AUC (frame level) against the number of labelled target samples used for "
                         "fine-tuning (0: no fine-tuning), per target and method. Line: mean over seeds, "
                         "band: lowest to highest seed."),
        "forest": ("Is DAML better? Every DAML - MAML and DAML - ERM difference of frame-level test AUC "
                   "of the fine-tuned models in the tables above, per cell, with the 95% interval "
                   "that holds training seeds, shot episodes and the test population; filled "
                   "markers: intervals that exclude zero. Right of the line: DAML better."),
    }
    return captions.get(name, name)


# ---------------------------------------------------------------------------------------------
# reading


def _read_csv(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DamlError(f"{path}: file is missing; run the train stage for it (`snakemake {path}`)")
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DamlError(f"{path}: lacks columns {missing}; see docs/architecture.md (Training)")
    if frame.empty:
        raise DamlError(f"{path}: has no rows; the training run wrote no history")
    return frame


def loss_curves(history_csv: str | Path, window: int) -> pd.DataFrame:
    """One seed's per-iteration losses from a long-format history.csv, smoothed.

    Arguments:
        history_csv: rows (iteration, task, query_loss, weight, meta_loss, lr).
        window: trailing rolling-mean width in iterations (min_periods=1, so the first
            iterations average what there is).

    Returns:
        DataFrame indexed by iteration with columns query_loss (mean over the iteration's
        tasks), meta_loss (the outer objective) and lr, the first two smoothed.
    """
    if window < 1:
        raise DamlError(f"figures.smooth_window: must be at least 1, got {window}")
    frame = _read_csv(history_csv, ["iteration", "task", "query_loss", "meta_loss", "lr"])
    per_iter = frame.groupby("iteration").agg(
        query_loss=("query_loss", "mean"), meta_loss=("meta_loss", "first"), lr=("lr", "first"))
    for column in ("query_loss", "meta_loss"):
        per_iter[column] = per_iter[column].rolling(window, min_periods=1).mean()
    return per_iter


def _spread(series: Sequence[pd.Series]) -> pd.DataFrame:
    """Mean, min and max over seeds, aligned on the index (iterations present in any seed)."""
    table = pd.concat(list(series), axis=1)
    return pd.DataFrame({"mean": table.mean(axis=1), "low": table.min(axis=1),
                         "high": table.max(axis=1)}).sort_index()


# ---------------------------------------------------------------------------------------------
# drawing


def _band(ax, stats: pd.DataFrame, method: str, dashed: bool = False) -> None:
    color = PALETTE.get(method)
    label = method_name(method)
    if dashed:
        ax.plot(stats.index, stats["mean"], color=color, label=f"{label}, no fine-tuning",
                linewidth=1.0, linestyle="--")
        return
    ax.plot(stats.index, stats["mean"], color=color, label=label, linewidth=1.6)
    if (stats["high"] > stats["low"]).any():
        ax.fill_between(stats.index, stats["low"], stats["high"], color=color, alpha=0.25, linewidth=0)


def _save(fig: Figure, out_png: str | Path, out_pdf: str | Path, dpi: int) -> None:
    FigureCanvasAgg(fig)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    with atomic_path(out_pdf) as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches="tight", metadata={"CreationDate": None})
    log.info("wrote %s and %s", out_png, out_pdf)


def _check_runs(runs: Mapping[str, Sequence], what: str) -> None:
    if not runs or any(len(paths) == 0 for paths in runs.values()):
        raise DamlError(f"{what}: give at least one {what} file per method (got {dict(runs)})")


def figure2(histories: Mapping[str, Sequence[str | Path]], out_png: str | Path, out_pdf: str | Path,
            smooth_window: int, dpi: int, source: str = "") -> None:
    """Figure 2: meta-training loss, one line per method, mean and spread over seeds.

    Arguments:
        histories: method (maml, daml) -> history.csv of each seed.
        out_png, out_pdf: output files.
        smooth_window: rolling-mean width in iterations, applied per seed before averaging.
        dpi: PNG resolution.
        source: the training source, for the title.
    """
    _check_runs(histories, "history.csv")
    with sns.axes_style(STYLE), sns.plotting_context("paper"):
        fig = Figure(figsize=(8.0, 3.2))
        axes = fig.subplots(1, 2)
        lr_drops: list[float] = []
        for method, paths in histories.items():
            curves = [loss_curves(p, smooth_window) for p in paths]
            _band(axes[0], _spread([c["query_loss"] for c in curves]), method)
            _band(axes[1], _spread([c["meta_loss"] for c in curves]), method)
            if not lr_drops:
                lr = curves[0]["lr"]
                lr_drops = list(lr.index[1:][lr.values[1:] < lr.values[:-1]])
        for ax, ylabel in zip(axes, ("mean task query loss", "outer objective (meta-loss)")):
            for x in lr_drops:
                ax.axvline(x, color="grey", linestyle=":", linewidth=1)
            ax.set_xlabel("meta-iteration")
            ax.set_ylabel(ylabel)
        axes[0].legend(frameon=False)
        fig.suptitle(f"Meta-training loss{' on ' + source if source else ''}")
        fig.tight_layout()
    _save(fig, out_png, out_pdf, dpi)


def figure3(validations: Mapping[str, Sequence[str | Path]], out_png: str | Path, out_pdf: str | Path,
            dpi: int, source: str = "") -> None:
    """Figure 3: validation AUC and ACC (percent) over iterations, mean and spread over seeds.

    Solid lines are the selection score (auc, acc: after the meta-test fine-tuning), dashed
    lines the weights as they are (theta_auc, theta_acc).

    Arguments:
        validations: method -> validation.csv (`daml.train.VALIDATION_COLUMNS`) of each seed.
        out_png, out_pdf: output files.
        dpi: PNG resolution.
        source: the training source, for the title.
    """
    _check_runs(validations, "validation.csv")
    with sns.axes_style(STYLE), sns.plotting_context("paper"):
        fig = Figure(figsize=(8.0, 3.2))
        axes = fig.subplots(1, 2)
        for method, paths in validations.items():
            frames = [_read_csv(p, ["iteration", "auc", "acc", "theta_auc", "theta_acc"])
                      .set_index("iteration") for p in paths]
            for ax, metric in zip(axes, ("auc", "acc")):
                _band(ax, _spread([100.0 * f[metric] for f in frames]), method)
                _band(ax, _spread([100.0 * f[f"theta_{metric}"] for f in frames]), method, dashed=True)
        for ax, label in zip(axes, ("validation AUC (%)", "validation ACC (%)")):
            ax.set_xlabel("meta-iteration")
            ax.set_ylabel(label)
        axes[0].legend(frameon=False)
        fig.suptitle(f"Validation during meta-training{' on ' + source if source else ''}")
        fig.tight_layout()
    _save(fig, out_png, out_pdf, dpi)


def shot_records(source: str, targets: Sequence[str], methods: Sequence[str], seeds: Sequence[int],
                 shots: Sequence[int], evaluations: Evaluations,
                 level: str = "frame") -> pd.DataFrame:
    """Collect test AUC (percent) for every target, method, seed and number of shots.

    Returns:
        DataFrame with columns target, method, seed, shots, auc.

    Raises:
        DamlError naming an evaluation missing from `evaluations`.
    """
    rows = [
        {"target": t, "method": m, "seed": s, "shots": k,
         "auc": 100.0 * evaluations.metric((source, t, m, s, k), "auc", level)}
        for t in targets for m in methods for s in seeds for k in shots
    ]
    return pd.DataFrame(rows, columns=["target", "method", "seed", "shots", "auc"])


def figure_shots(records: pd.DataFrame, out_png: str | Path, out_pdf: str | Path, dpi: int,
                 source: str = "") -> None:
    """Test AUC against target shots: one panel per target, one line per method.

    Arguments:
        records: `shot_records` output (target, method, seed, shots, auc in percent).
        out_png, out_pdf: output files.
        dpi: PNG resolution.
        source: the training source, for the title.
    """
    if records.empty:
        raise DamlError("figure_shots: no records; check figures.shots_targets and the shots list")
    targets = list(dict.fromkeys(records["target"]))
    with sns.axes_style(STYLE), sns.plotting_context("paper"):
        fig = Figure(figsize=(3.2 * len(targets) + 0.6, 3.2))
        axes = np.atleast_1d(fig.subplots(1, len(targets), sharey=True, squeeze=False)[0])
        for ax, target in zip(axes, targets):
            part = records[records["target"] == target]
            for method in dict.fromkeys(part["method"]):
                table = part[part["method"] == method].pivot_table(
                    index="shots", columns="seed", values="auc", aggfunc="mean", dropna=False)
                stats = _spread([table[c] for c in table.columns])
                _band(ax, stats, method)
                ax.scatter(stats.index, stats["mean"], color=PALETTE.get(method), s=12)
            ax.set_title(target)
            ax.set_xlabel("target shots")
            ax.set_xticks(sorted(set(part["shots"])))
        axes[0].set_ylabel("test AUC (%)")
        axes[0].legend(frameon=False)
        fig.suptitle(f"AUC against target shots{' (trained on ' + source + ')' if source else ''}")
        fig.tight_layout()
    _save(fig, out_png, out_pdf, dpi)


def forest_rows(table_csvs: Sequence[str | Path]) -> pd.DataFrame:
    """The comparison rows of the tables, in table order, with a label per cell.

    Returns:
        DataFrame with table, label ("Table 2: FF++ -> DFDC"), method ("DAML - MAML"),
        value, ci_low, ci_high (AUC points).
    """
    order = {name: i for i, name in enumerate(_tables.TABLES)}
    frames = []
    for path in sorted(map(Path, table_csvs), key=lambda p: (order.get(p.stem, len(order)), p.name)):
        table = _tables.read_table(path)
        rows = table[table["kind"] == _tables.COMPARISON].copy()
        if rows.empty:
            continue
        title = _tables.TABLES[path.stem].title.split(".")[0] if path.stem in _tables.TABLES else path.stem
        rows["label"] = [f"{title}: {r.train} -> {r.test}" if r.train != r.test else f"{title}: {r.test}"
                         for r in rows.itertuples()]
        frames.append(rows[["table", "label", "method", "value", "ci_low", "ci_high"]])
    if not frames:
        raise DamlError("forest: no comparison rows in the tables; they need the evaluate stage's "
                        "predictions and at least two methods")
    return pd.concat(frames, ignore_index=True)


def forest(rows: pd.DataFrame, out_png: str | Path, out_pdf: str | Path, dpi: int) -> None:
    """The forest plot of `forest_rows`: one line per cell, one marker per comparison."""
    labels = list(dict.fromkeys(rows["label"]))
    methods = list(dict.fromkeys(rows["method"]))
    colours = dict(zip(methods, sns.color_palette("colorblind", len(methods) + 2)[2:]))
    y_of = {label: i for i, label in enumerate(labels)}
    offset = {m: (i - (len(methods) - 1) / 2) * 0.28 for i, m in enumerate(methods)}
    with sns.axes_style(STYLE), sns.plotting_context("paper"):
        fig = Figure(figsize=(7.5, 0.22 * len(labels) + 1.3))
        ax = fig.subplots()
        ax.axvline(0, color="black", linewidth=0.8)
        for method in methods:
            part = rows[rows["method"] == method]
            y = np.array([y_of[label] for label in part["label"]]) + offset[method]
            low, high = part["ci_low"].to_numpy(), part["ci_high"].to_numpy()
            value = part["value"].to_numpy()
            clear = (low > 0) | (high < 0)
            ax.hlines(y, low, high, color=colours[method], linewidth=1.2, label=method)
            ax.scatter(value[clear], y[clear], color=colours[method], s=14, zorder=3)
            ax.scatter(value[~clear], y[~clear], facecolor="white", edgecolor=colours[method], s=14,
                       zorder=3)
        tables = list(dict.fromkeys(rows["table"]))
        for table in tables[1:]:  # a rule between tables
            first = min(y_of[label] for label in rows.loc[rows["table"] == table, "label"])
            ax.axhline(first - 0.5, color="#d0d7de", linewidth=0.8)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlabel("AUC difference of the fine-tuned models (points), 95% interval")
        ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(methods))
        fig.tight_layout()
    _save(fig, out_png, out_pdf, dpi)


# ---------------------------------------------------------------------------------------------
# the stage's entry point (scripts/plot_figure.py)


def _runs_by_method(paths: Sequence[str | Path], methods: Sequence[str], seeds: Sequence[int],
                    what: str) -> dict[str, list[Path]]:
    """Group .../{method}/seed{seed}/<what> files by method, in `methods` order, checking seeds."""
    found: dict[tuple[str, int], Path] = {}
    for path in map(Path, paths):
        if path.name != what or not path.parent.name.startswith("seed"):
            raise DamlError(f"{path}: expected .../{{method}}/seed{{seed}}/{what}")
        found[(path.parent.parent.name, int(path.parent.name[4:]))] = path
    runs: dict[str, list[Path]] = {}
    for method in methods:
        have = [found[(method, s)] for s in seeds if (method, s) in found]
        if not have:
            continue
        if len(have) != len(seeds):
            raise DamlError(f"{what}: method {method!r} has {len(have)} of {len(seeds)} seeds among the "
                            "inputs; the figure's inputs and the config's seeds disagree")
        runs[method] = have
    if not runs:
        raise DamlError(f"{what}: none of the inputs belongs to methods {list(methods)}")
    return runs


def plot_figure(name: str, data: Sequence[str | Path], figures_config: Mapping, methods: Sequence[str],
                seeds: Sequence[int], out_png: str | Path, out_pdf: str | Path) -> None:
    """Draw figure `name` (figure2, figure3, figure_shots, forest) from its input files.

    Arguments:
        name: which figure.
        data: history.csv files (figure2), validation.csv files (figure3) or metrics.json
            files (figure_shots), for every method and seed, or the tables' CSVs (forest);
            any order.
        figures_config: the config's `figures` section (`FigureSettings` fields).
        methods, seeds: the config's `methods` and `seeds` (figures 2-3 keep MAML and DAML).
        out_png, out_pdf: outputs.
    """
    settings = settings_from(FigureSettings, dict(figures_config), "figures")
    curve_methods = [m for m in ("maml", "daml") if m in methods]
    if name == "figure2":
        runs = _runs_by_method(data, curve_methods, seeds, "history.csv")
        figure2(runs, out_png, out_pdf, settings.smooth_window, DPI, settings.curves_source)
    elif name == "figure3":
        runs = _runs_by_method(data, curve_methods, seeds, "validation.csv")
        figure3(runs, out_png, out_pdf, DPI, settings.curves_source)
    elif name == "figure_shots":
        records = shot_records(settings.shots_source, settings.shots_targets, methods, seeds,
                               settings.shots, Evaluations(data))
        figure_shots(records, out_png, out_pdf, DPI, settings.shots_source)
    elif name == "forest":
        forest(forest_rows(data), out_png, out_pdf, DPI)
    else:
        raise DamlError(f"figure {name!r}: unknown; known: figure2, figure3, figure_shots, forest")
