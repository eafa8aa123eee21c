"""Tables from hand-made evaluation files against hand-computed means, stds and differences."""

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from evaluations import EvaluationWriter

from daml import tables
from daml.errors import DamlError
from daml.evaluations import Evaluations

METHODS = ["daml", "maml"]
SEEDS = [0, 1]


def evaluations(writer: EvaluationWriter) -> Evaluations:
    return Evaluations(*writer.write())


@pytest.fixture
def reference():
    return tables.load_reference()


TABLE1 = [
    {"source": "ffpp-c23", "target": "ffpp-c23", "shots": 10, "paper_train": "FF++ c23", "paper_test": "FF++ c23"},
    {"source": "ffpp-c40", "target": "ffpp-c40", "shots": 10, "paper_train": "FF++ c40", "paper_test": "FF++ c40"},
]


def write_both(writer, source, target, method, seed, shots, acc, auc, predictions=None):
    """An evaluation fine-tuned (`shots`) and zero-shot (shots 0: ten points lower)."""
    writer.add(source, target, method, seed, 0, acc - 0.1, None if auc is None else auc - 0.1,
               predictions=None if predictions is None else predictions.assign(prob=predictions.prob / 2))
    writer.add(source, target, method, seed, shots, acc, auc, predictions=predictions)


@pytest.fixture
def table1(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    # (acc, auc) per method and seed on c23; c40 all 0.5
    values = {("daml", 0): (0.90, 0.80), ("daml", 1): (0.94, 0.86), ("maml", 0): (0.70, 0.60), ("maml", 1): (0.72, 0.64)}
    for (method, seed), (acc, auc) in values.items():
        write_both(fn, "ffpp-c23", "ffpp-c23", method, seed, 10, acc, auc)
        write_both(fn, "ffpp-c40", "ffpp-c40", method, seed, 10, 0.5, 0.5)
    return tables.build_table("table1", TABLE1, METHODS, SEEDS, evaluations(fn), reference)


def cell(df, method, test, metric, column="value", kind=None):
    hit = df[(df["method"] == method) & (df["test"] == test) & (df["metric"] == metric)]
    if kind is not None:
        hit = hit[hit["kind"] == kind]
    elif method.endswith("(ours)"):
        hit = hit[hit["kind"] == tables.MEASURED]
    assert len(hit) == 1, (method, test, metric, len(hit))
    return hit[column].iloc[0]


def test_measured_mean_std_and_difference(table1):
    assert cell(table1, "DAML (ours)", "FF++ c23", "ACC") == pytest.approx(92.0)
    # sample std of (90, 94) = |94 - 90| / sqrt(2)
    assert cell(table1, "DAML (ours)", "FF++ c23", "ACC", "std") == pytest.approx(4 / math.sqrt(2))
    assert cell(table1, "DAML (ours)", "FF++ c23", "AUC") == pytest.approx(83.0)
    assert cell(table1, "MAML (ours)", "FF++ c23", "AUC") == pytest.approx(62.0)
    assert cell(table1, "DAML (ours)", "FF++ c23", "ACC", "per_seed") == "90.0000;94.0000"
    assert cell(table1, "DAML (ours)", "FF++ c23", "ACC", "n_seeds") == 2
    assert cell(table1, "DAML (ours)", "FF++ c23", "ACC", "shots") == 10


def test_every_row_has_its_zero_shot_companion(table1):
    zero = table1[table1["kind"] == tables.ZERO_SHOT]
    assert set(zero["shots"]) == {0} and set(zero["method"]) == {"DAML (ours)", "MAML (ours)"}
    assert cell(table1, "DAML (ours)", "FF++ c23", "AUC", kind=tables.ZERO_SHOT) == pytest.approx(73.0)
    # only the fine-tuned model is set against the paper, which reports its fine-tuned model
    assert zero["paper"].isna().all()
    lay = tables.layout(table1)
    labels = [tuple(r["index"]) for r in lay.rows]
    tuned = labels.index(("DAML (ours)", "fine-tuned, 10 shots (2 seeds)"))
    assert labels[tuned + 1] == ("DAML: ours - paper", "difference")
    assert labels[tuned + 2] == ("DAML (ours)", "no fine-tuning (2 seeds)")
    md = tables.to_markdown(lay)
    assert "| DAML (ours) | no fine-tuning (2 seeds) | 82.00 ± 2.83 | 73.00 ± 4.24 |" in md


def test_paper_value_from_reference_file(table1):
    ref = pd.read_csv(Path(tables.__file__).parent / "reference" / "paper_tables.csv")
    paper = ref[(ref.table == 1) & (ref.train == "FF++ c23") & (ref.test == "FF++ c23") & (ref.method == "DAML")
                & (ref.metric == "ACC")]["value"].item()
    assert paper == 97.24  # the paper's Table 1, DAML, FF++ (c23), ACC
    assert cell(table1, "DAML (ours)", "FF++ c23", "ACC", "paper") == paper
    assert cell(table1, "DAML (ours)", "FF++ c23", "ACC", "diff") == pytest.approx(92.0 - 97.24)
    assert math.isnan(cell(table1, "MAML (ours)", "FF++ c23", "ACC", "paper"))


def test_quoted_rows_present_and_marked(table1):
    quoted = table1[table1["kind"] == "quoted"]
    methods = set(quoted["method"])
    assert {"Multi-task", "Xception", "RECCE", "RFM", "Add-Net", "F3-Net", "MultiAtt", "DAML (paper)"} == methods
    assert cell(table1, "RECCE", "FF++ c40", "AUC") == 95.02
    assert quoted["std"].isna().all() and (quoted["n_seeds"] == 0).all()
    assert set(table1.loc[table1["method"].str.endswith("(ours)"), "kind"]) == {"measured", "zero-shot"}
    lay = tables.layout(table1)
    labels = {tuple(r["index"]): r["kind"] for r in lay.rows}
    assert labels[("Xception", "quoted (paper)")] == "quoted"
    md = tables.to_markdown(lay)
    assert "| Xception | quoted (paper) | 95.73 | 96.30 | 86.86 | 89.30 |" in md
    assert "| DAML: ours - paper | difference | -5.24 |" in md


def test_table2_has_no_f3net(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    entry = {"source": "ffpp-c23", "target": "dfdc", "shots": 10, "paper_train": "FF++", "paper_test": "DFDC"}
    for method in METHODS:
        for seed in SEEDS:
            write_both(fn, "ffpp-c23", "dfdc", method, seed, 10, 0.6, 0.7)
    df = tables.build_table("table2", [entry], METHODS, SEEDS, evaluations(fn), reference)
    assert "F3-Net" not in set(df["method"])
    assert cell(df, "DAML (paper)", "DFDC", "AUC") == 67.89
    assert cell(df, "DAML (ours)", "DFDC", "AUC", "diff") == pytest.approx(70.0 - 67.89)
    assert set(df.loc[df["kind"] == tables.MEASURED, "shots"]) == {10}


def test_cross_avg_per_seed_then_mean(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    names = {"df": "DF", "f2f": "F2F", "fs": "FS", "nt": "NT"}
    auc = {  # seed -> target -> AUC for DAML trained on DF
        0: {"df": 0.99, "f2f": 0.60, "fs": 0.70, "nt": 0.80},
        1: {"df": 0.97, "f2f": 0.62, "fs": 0.72, "nt": 0.86},
    }
    entries = [{"source": "ffpp-c40-df", "target": f"ffpp-c40-{t}", "shots": 5, "paper_train": "DF",
                "paper_test": names[t]} for t in names]
    for seed, per_target in auc.items():
        for t, value in per_target.items():
            write_both(fn, "ffpp-c40-df", f"ffpp-c40-{t}", "daml", seed, 5, 0.5, value)
    df = tables.build_table("table3", entries, ["daml"], SEEDS, evaluations(fn), reference)
    seed_means = [(60 + 70 + 80) / 3, (62 + 72 + 86) / 3]
    assert cell(df, "DAML (ours)", "Cross AVG", "AUC") == pytest.approx(sum(seed_means) / 2)
    assert cell(df, "DAML (ours)", "Cross AVG", "AUC", "std") == pytest.approx(abs(seed_means[0] - seed_means[1]) / math.sqrt(2))
    assert cell(df, "DAML (ours)", "Cross AVG", "AUC", "paper") == 73.93
    assert cell(df, "Xception", "Cross AVG", "AUC") == 57.78
    zero = cell(df, "DAML (ours)", "Cross AVG", "AUC", kind=tables.ZERO_SHOT)
    assert zero == pytest.approx(sum(seed_means) / 2 - 10)
    assert set(df["metric"]) == {"AUC"}
    lay = tables.layout(df)
    assert lay.columns[-1] == ("Cross AVG", "AUC")
    assert lay.index_names == ["Train", "Method", "Row"]


def test_missing_metrics_file_names_it(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    with pytest.raises(DamlError, match=r"no evaluation of ffpp-c23 -> ffpp-c23, daml, seed 0, 10 shots"):
        tables.build_table("table1", TABLE1[:1], ["daml"], [0], evaluations(fn), reference)


def test_nan_metric_shown_as_na(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    write_both(fn, "ffpp-c23", "ffpp-c23", "daml", 0, 10, 0.9, float("nan"))
    write_both(fn, "ffpp-c23", "ffpp-c23", "daml", 1, 10, 0.9, None)
    df = tables.build_table("table1", TABLE1[:1], ["daml"], SEEDS, evaluations(fn), reference)
    assert math.isnan(cell(df, "DAML (ours)", "FF++ c23", "AUC"))
    out = tmp_path / "out"
    tables.write_table(df, out / "t.csv", out / "t.md", out / "t.tex")
    md = (out / "t.md").read_text()
    assert "| DAML (ours) | fine-tuned, 10 shots (2 seeds) | 90.00 ± 0.00 | n/a |" in md
    back = tables.read_table(out / "t.csv")
    assert math.isnan(cell(back, "DAML (ours)", "FF++ c23", "AUC"))
    assert cell(back, "DAML (ours)", "FF++ c23", "ACC") == pytest.approx(90.0)


def test_write_table_outputs(table1, tmp_path):
    out = tmp_path / "tables"
    tables.write_table(table1, out / "table1.csv", out / "table1.md", out / "table1.tex")
    assert sorted(p.name for p in out.iterdir()) == ["table1.csv", "table1.md", "table1.tex"]  # no temp files
    tex = (out / "table1.tex").read_text()
    assert r"\toprule" in tex and r"\textit{Xception}" in tex and r"$\pm$" in tex
    back = tables.read_table(out / "table1.csv")
    assert list(back.columns) == tables.TIDY_COLUMNS and len(back) == len(table1)


def test_unknown_paper_label_is_an_error(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    bad = [dict(TABLE1[0], paper_test="FF++ c99")]
    with pytest.raises(DamlError, match="FF\\+\\+ c99"):
        tables.build_table("table1", bad, ["daml"], [0], evaluations(fn), reference)


def test_loto_has_no_paper_rows(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    entry = {"source": "ffpp-c40-no-df", "target": "ffpp-c40-df", "shots": 10}
    for seed in SEEDS:
        write_both(fn, "ffpp-c40-no-df", "ffpp-c40-df", "daml", seed, 10, 0.5, 0.6 + 0.1 * seed)
    df = tables.build_table("loto", [entry], ["daml"], SEEDS, evaluations(fn), reference)
    assert list(df["kind"]) == ["measured", "zero-shot"]
    assert df["value"].tolist() == pytest.approx([65.0, 55.0]) and df["paper"].isna().all()
    assert set(df["test"]) == {"ffpp-c40-df"}


def test_make_table_from_input_list(tmp_path):
    writer = EvaluationWriter(tmp_path / "results")
    for m in METHODS:
        for s in SEEDS:
            write_both(writer, "ffpp-c23", "ffpp-c23", m, s, 10, 0.8, 0.9)
    metrics, _ = writer.write()
    out = tmp_path / "results" / "tables"
    df = tables.make_table("table1", TABLE1[:1], METHODS, SEEDS, list(reversed(metrics)),
                           out / "table1.csv", out / "table1.md", out / "table1.tex")
    assert cell(df, "MAML (ours)", "FF++ c23", "AUC") == pytest.approx(90.0)
    assert not (df["kind"] == tables.COMPARISON).any()  # no predictions given
    with pytest.raises(DamlError, match="ffpp-c40 -> ffpp-c40, daml, seed 0, 10 shots among the stage's inputs"):
        tables.make_table("table1", TABLE1, METHODS, SEEDS, metrics, out / "a.csv", out / "a.md", out / "a.tex")


def test_entry_without_paper_labels_gets_no_paper_numbers(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    entry = {"source": "ffpp-c23", "target": "ffpp-c40", "shots": 10}
    for seed in SEEDS:
        write_both(fn, "ffpp-c23", "ffpp-c40", "daml", seed, 10, 0.7, 0.8)
    df = tables.build_table("table1", [entry], ["daml"], SEEDS, evaluations(fn), reference)
    assert list(df["kind"].unique()) == ["measured", "zero-shot"] and df["paper"].isna().all()
    assert set(df["test"]) == {"ffpp-c40"} and set(df["train"]) == {"ffpp-c23"}


def predictions(method, seed, target, shift, videos=30, frames=4, dataset="ffpp") -> pd.DataFrame:
    """One evaluation's predictions: fakes score `shift` higher than reals, plus noise."""
    rng = np.random.default_rng(zlib.crc32(f"{method}/{seed}/{target}".encode()))
    rows = []
    for v in range(videos):
        label = v % 2
        for f in range(frames):
            prob = 1 / (1 + math.exp(-(shift * label + rng.normal(0, 1))))
            rows.append(dict(episode=0, key=f"{dataset}/c40/x/{v:03d}", dataset=dataset,
                             technique="x", video=f"{v:03d}", frame=f,
                             cluster=f"{dataset}:{v // 2}", label=label, prob=prob))
    return pd.DataFrame(rows)


def test_comparisons_with_paired_bootstrap_intervals(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    names = {"df": "DF", "nt": "NT"}
    entries = [{"source": "ffpp-c40-df", "target": f"ffpp-c40-{t}", "shots": 10, "paper_train": "DF",
                "paper_test": names[t]} for t in names]
    shift = {"daml": 3.0, "maml": 0.2, "erm": 2.9}  # DAML far better than MAML, like ERM
    made = {}
    for t in names:
        for method in shift:
            for seed in SEEDS:
                made[(t, method, seed)] = predictions(method, seed, f"ffpp-c40-{t}", shift[method])
                write_both(fn, "ffpp-c40-df", f"ffpp-c40-{t}", method, seed, 10, 0.5, 0.7,
                           predictions=made[(t, method, seed)])
    df = tables.build_table("table3", entries, list(shift), SEEDS, evaluations(fn), reference)
    comparisons = df[df["kind"] == tables.COMPARISON]
    assert set(comparisons["method"]) == {"DAML - MAML", "DAML - ERM"}
    assert set(comparisons["test"]) == {"DF", "NT", "Cross AVG"}
    maml = comparisons[(comparisons["method"] == "DAML - MAML") & (comparisons["test"] == "NT")].iloc[0]
    # the value is the mean over seeds of the AUC differences, computed directly here
    from sklearn.metrics import roc_auc_score
    direct = []
    for seed in SEEDS:
        a, b = (made[("nt", m, seed)] for m in ("daml", "maml"))
        direct.append(roc_auc_score(a.label, a.prob) - roc_auc_score(b.label, b.prob))
    assert maml["value"] == pytest.approx(100 * np.mean(direct))
    assert 0 < maml["ci_low"] < maml["value"] < maml["ci_high"]  # clearly better
    erm = comparisons[(comparisons["method"] == "DAML - ERM") & (comparisons["test"] == "NT")].iloc[0]
    assert erm["ci_low"] < 0 < erm["ci_high"]  # indistinguishable
    cross = comparisons[(comparisons["method"] == "DAML - MAML") & (comparisons["test"] == "Cross AVG")]
    assert cross["value"].item() == pytest.approx(maml["value"])  # NT is the only unseen technique
    lay = tables.layout(df)
    md = tables.to_markdown(lay)
    assert f"{maml['value']:+.2f} [{maml['ci_low']:+.2f}, {maml['ci_high']:+.2f}] *" in md
    assert any("Distinguishable from zero: DAML - MAML on" in n for n in lay.notes)
    back_dir = tmp_path / "out"
    tables.write_table(df, back_dir / "t.csv", back_dir / "t.md", back_dir / "t.tex")
    back = tables.read_table(back_dir / "t.csv")
    assert back.loc[back["kind"] == tables.COMPARISON, "ci_low"].notna().all()


def test_every_number_gets_an_interval_and_a_table_mean(tmp_path, reference):
    fn = EvaluationWriter(tmp_path)
    targets = {"celebdf": "Celeb-DF", "dfdc": "DFDC"}
    entries = [{"source": "ffpp-c23", "target": t, "shots": 10, "paper_train": "FF++",
                "paper_test": label} for t, label in targets.items()]
    shift = {"daml": 1.5, "maml": 1.0}
    for t in targets:
        for method in shift:
            for seed in SEEDS:
                made = predictions(method, seed, t, shift[method] + 0.3 * seed, dataset=t)
                write_both(fn, "ffpp-c23", t, method, seed, 10, 0.6, 0.7, predictions=made)
    df = tables.build_table("table2", entries, METHODS, SEEDS, evaluations(fn), reference,
                            n_resamples=300)
    measured = df[df["kind"].isin([tables.MEASURED, tables.ZERO_SHOT])]
    assert measured["ci_low"].notna().all() and (measured["ci_low"] <= measured["value"]).all()
    assert (measured["value"] <= measured["ci_high"]).all() and (measured["ci_high"] <= 100).all()
    assert set(measured["noise"]) == {"seeds+test clusters"}  # one episode per seed here
    mean = df[(df["test"] == tables.MEAN) & (df["method"] == "DAML - MAML")].iloc[0]
    cells = df[(df["kind"] == tables.COMPARISON) & (df["test"] != tables.MEAN)]
    assert mean["value"] == pytest.approx(cells["value"].mean())
    assert mean["train"] == "FF++" and mean["detectable"] > 0 and mean["n_units"] == 30
    # the table's mean is measured too, beside the cells
    daml_mean = cell(df, "DAML (ours)", tables.MEAN, "AUC")
    assert daml_mean == pytest.approx(np.mean([cell(df, "DAML (ours)", t, "AUC") for t in targets.values()]))
    lay = tables.layout(df)
    assert lay.columns[-2:] == [(tables.MEAN, "ACC"), (tables.MEAN, "AUC")]
    md = tables.to_markdown(lay)
    row = measured[(measured["method"] == "DAML (ours)") & (measured["test"] == "DFDC")
                   & (measured["metric"] == "AUC") & (measured["kind"] == tables.MEASURED)].iloc[0]
    half = stats.t.ppf(0.975, row["df"]) * row["se"]  # the interval before it is cut to [0, 100]
    if row["ci_high"] < 100 and row["ci_low"] > 0:
        assert half == pytest.approx((row["ci_high"] - row["ci_low"]) / 2, rel=1e-6)
    assert f"{row['value']:.2f} ± {half:.2f}" in md
    assert any(n.startswith("Smallest AUC difference") for n in lay.notes)
    assert any("1 degree of freedom (t = 12.7)" in n for n in lay.notes)
