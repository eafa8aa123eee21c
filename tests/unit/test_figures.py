"""Figures from tiny fake histories: valid PNG/PDF files, smoothing against a hand computation."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluations import EvaluationWriter

from daml import figures
from daml.errors import DamlError
from daml.evaluations import Evaluations

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(root: Path, method: str, seed: int, iterations: int = 12, tasks: int = 4) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed + (7 if method == "daml" else 0))
    rows = []
    for it in range(1, iterations + 1):
        losses = rng.random(tasks) + 1.0 / it
        weights = 1 / (1 + np.exp(-losses)) if method == "daml" else np.ones(tasks)
        lr = 1e-3 if it <= iterations // 2 else 1e-4
        rows += [(it, f"task{t}", losses[t], weights[t], float((losses * weights).sum()), lr) for t in range(tasks)]
    folder = root / "train" / "ffpp-c23" / method / f"seed{seed}"
    folder.mkdir(parents=True)
    history = folder / "history.csv"
    pd.DataFrame(rows, columns=["iteration", "task", "query_loss", "weight", "meta_loss", "lr"]).to_csv(history, index=False)
    validation = folder / "validation.csv"
    its = np.arange(3, iterations + 1, 3)
    pd.DataFrame({"iteration": its, "auc": 0.5 + its / 40, "acc": 0.5 + its / 50, "loss": 0.7,
                  "theta_auc": 0.5 + its / 80, "theta_acc": 0.5, "theta_loss": 0.7}).to_csv(validation, index=False)
    return history, validation


@pytest.fixture
def runs(tmp_path):
    out = {m: [write_run(tmp_path, m, s) for s in (0, 1)] for m in ("maml", "daml")}
    return {"history": {m: [h for h, _ in v] for m, v in out.items()},
            "validation": {m: [v for _, v in vals] for m, vals in out.items()}}


def assert_valid(png: Path, pdf: Path):
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC
    assert pdf.stat().st_size > 1000 and pdf.read_bytes()[:5] == b"%PDF-"
    assert not [p for p in png.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_loss_curves_smoothing_matches_hand_computation(tmp_path):
    history = tmp_path / "history.csv"
    pd.DataFrame({
        "iteration": [1, 1, 2, 2, 3, 3, 4, 4],
        "task": ["a", "b"] * 4,
        "query_loss": [1.0, 3.0, 2.0, 2.0, 0.0, 4.0, 1.0, 1.0],  # per-iteration means 2, 2, 2, 1
        "weight": 1.0,
        "meta_loss": [4.0, 4.0, 8.0, 8.0, 2.0, 2.0, 6.0, 6.0],
        "lr": 1e-3,
    }).to_csv(history, index=False)
    curves = figures.loss_curves(history, window=2)
    assert list(curves["meta_loss"]) == [4.0, 6.0, 5.0, 4.0]  # trailing mean, min_periods=1
    assert list(curves["query_loss"]) == [2.0, 2.0, 2.0, 1.5]
    with pytest.raises(DamlError, match="smooth_window"):
        figures.loss_curves(history, window=0)


def test_figure2_and_figure3(runs, tmp_path):
    out = tmp_path / "figures"
    figures.figure2(runs["history"], out / "figure2.png", out / "figure2.pdf", smooth_window=3, dpi=60, source="ffpp-c23")
    assert_valid(out / "figure2.png", out / "figure2.pdf")
    figures.figure3(runs["validation"], out / "figure3.png", out / "figure3.pdf", dpi=60)
    assert_valid(out / "figure3.png", out / "figure3.pdf")


def test_figure_shots_from_metrics(tmp_path):
    writer = EvaluationWriter(tmp_path / "results")
    for target in ("celebdf", "dfdc"):
        for method in ("daml", "erm"):
            for seed in (0, 1):
                for shots in (0, 5):
                    writer.add("ffpp-c23", target, method, seed, shots, 0.5, 0.6 + 0.02 * shots + 0.01 * seed)
    paths, _ = writer.write()
    settings = {"curves_source": "ffpp-c23", "shots_source": "ffpp-c23", "shots_targets": ["celebdf", "dfdc"],
                "shots": [0, 5], "smooth_window": 2}
    records = figures.shot_records("ffpp-c23", ["celebdf"], ["daml"], [0, 1], [0, 5], Evaluations(paths))
    assert records.set_index(["seed", "shots"])["auc"].to_dict() == pytest.approx(
        {(0, 0): 60.0, (0, 5): 70.0, (1, 0): 61.0, (1, 5): 71.0})
    out = tmp_path / "figures"
    figures.plot_figure("figure_shots", paths, settings, ["daml", "erm"], [0, 1], out / "s.png", out / "s.pdf")
    assert_valid(out / "s.png", out / "s.pdf")


def test_plot_figure_from_input_lists(runs, tmp_path):
    settings = {"curves_source": "ffpp-c23", "shots_source": "ffpp-c23", "shots_targets": [], "shots": [0],
                "smooth_window": 2}
    histories = [p for paths in runs["history"].values() for p in paths]
    out = tmp_path / "figures"
    figures.plot_figure("figure2", histories, settings, ["daml", "maml", "erm"], [0, 1], out / "f.png", out / "f.pdf")
    assert_valid(out / "f.png", out / "f.pdf")
    with pytest.raises(DamlError, match="1 of 2 seeds"):
        figures.plot_figure("figure2", histories[:1], settings, ["maml"], [0, 1], out / "g.png", out / "g.pdf")
    with pytest.raises(DamlError, match="smooth_window"):
        figures.plot_figure("figure2", histories, {k: v for k, v in settings.items() if k != "smooth_window"},
                            ["maml"], [0, 1], out / "g.png", out / "g.pdf")
    assert not (out / "g.png").exists()


def test_missing_history_is_an_error(tmp_path):
    missing = tmp_path / "train" / "x" / "maml" / "seed0" / "history.csv"
    with pytest.raises(DamlError, match=str(missing)):
        figures.figure2({"maml": [missing]}, tmp_path / "a.png", tmp_path / "a.pdf", 2, 60)
    assert not (tmp_path / "a.png").exists()


def test_captions_mention_window():
    settings = figures.FigureSettings("ffpp-c23", "ffpp-c23", ["celebdf"], [0, 10], 25)
    assert "25 iterations" in figures.caption("figure2", settings)
    assert "ffpp-c23" in figures.caption("figure3", settings)


def comparison_table(path: Path, name: str, cells: list[tuple[str, str, str, float, float, float]]):
    """A tidy table CSV holding only comparison rows (train, test, method, value, low, high)."""
    from daml import tables

    rows = [{c: np.nan for c in tables.TIDY_COLUMNS} | {
        "table": name, "train": train, "test": test, "source": "s", "target": "t", "shots": 10,
        "method": method, "kind": tables.COMPARISON, "metric": "AUC", "value": value,
        "ci_low": low, "ci_high": high, "n_seeds": 2, "per_seed": "", "noise": ""}
        for train, test, method, value, low, high in cells]
    pd.DataFrame(rows, columns=tables.TIDY_COLUMNS).to_csv(path, index=False)
    return path


def test_forest_plot_draws_every_comparison_of_the_tables_in_table_order(tmp_path):
    t2 = comparison_table(tmp_path / "table2.csv", "table2", [
        ("FF++", "Celeb-DF", "DAML - MAML", 2.0, -5.0, 9.0),
        ("FF++", "Celeb-DF", "DAML - ERM", 6.0, 1.0, 11.0)])
    t1 = comparison_table(tmp_path / "table1.csv", "table1", [
        ("FF++ c23", "FF++ c23", "DAML - MAML", -1.0, -3.0, 1.0)])
    rows = figures.forest_rows([t2, t1])
    assert list(rows["label"]) == ["Table 1: FF++ c23", "Table 2: FF++ -> Celeb-DF", "Table 2: FF++ -> Celeb-DF"]
    out = tmp_path / "figures"
    settings = {"curves_source": "ffpp-c23", "shots_source": "ffpp-c23", "shots_targets": [], "shots": [0],
                "smooth_window": 2}
    figures.plot_figure("forest", [t2, t1], settings, ["daml", "maml", "erm"], [0, 1],
                        out / "forest.png", out / "forest.pdf")
    assert_valid(out / "forest.png", out / "forest.pdf")
    empty = comparison_table(tmp_path / "loto.csv", "loto", [])
    with pytest.raises(DamlError, match="no comparison rows"):
        figures.forest_rows([empty])
