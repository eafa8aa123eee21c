"""Open a rendered report in Debian's headless chromium: tables in the DOM, images decoded.

The page's inline script sets `data-images-decoded="all"` on <html> once every <img> has
naturalWidth > 0; `--dump-dom` after a virtual-time budget reads it back. A screenshot is
written too; set DAML_SCREENSHOT_DIR to keep a copy of it and of the page to look at.
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluations import EvaluationWriter

from daml import figures, report, tables
from daml.evaluations import Evaluations

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium)"),
]

TECHNIQUES = {"df": "DF", "f2f": "F2F", "fs": "FS", "nt": "NT"}


def flags(profile: Path) -> list[str]:
    return [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}"]


def build_report(root: Path) -> Path:
    """A report with Table 1, Table 3, two real figures, a manifest and a benchmark file."""
    rng = np.random.default_rng(0)
    specs = {
        "table1": [{"source": "ffpp-c23", "target": "ffpp-c23", "shots": 10, "paper_train": "FF++ c23",
                    "paper_test": "FF++ c23"}],
        "table3": [{"source": f"ffpp-c40-{a}", "target": f"ffpp-c40-{b}", "shots": 10,
                    "paper_train": TECHNIQUES[a], "paper_test": TECHNIQUES[b]} for a in ("df", "nt") for b in TECHNIQUES],
    }
    table_files = []
    for name, entries in specs.items():
        writer = EvaluationWriter(root / name)
        for e in entries:
            for method in ("daml", "maml"):
                for seed in (0, 1):
                    for shots in (0, 10):
                        writer.add(e["source"], e["target"], method, seed, shots,
                                   rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.95))
        out = root / "tables"
        df = tables.build_table(name, entries, ["daml", "maml"], [0, 1], Evaluations(*writer.write()),
                                tables.load_reference())
        table_files += [out / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
        tables.write_table(df, *table_files[-3:])

    histories, validations = {}, {}
    for method in ("maml", "daml"):
        for seed in (0, 1):
            folder = root / "train" / "ffpp-c23" / method / f"seed{seed}"
            folder.mkdir(parents=True)
            its = np.repeat(np.arange(1, 61), 4)
            loss = rng.random(len(its)) * 0.3 + 1.0 / np.sqrt(its)
            pd.DataFrame({"iteration": its, "task": np.tile(["a", "b", "c", "d"], 60), "query_loss": loss,
                          "weight": 1.0, "meta_loss": np.repeat(loss.reshape(-1, 4).sum(1), 4),
                          "lr": np.where(its > 40, 1e-4, 1e-3)}).to_csv(folder / "history.csv", index=False)
            v = np.arange(10, 61, 10)
            pd.DataFrame({"iteration": v, "auc": 0.6 + v / 200 + rng.random(len(v)) / 50, "acc": 0.55 + v / 250,
                          "loss": 0.6, "theta_auc": 0.55 + v / 250, "theta_acc": 0.5 + v / 300,
                          "theta_loss": 0.65}).to_csv(folder / "validation.csv", index=False)
            histories.setdefault(method, []).append(folder / "history.csv")
            validations.setdefault(method, []).append(folder / "validation.csv")
    fig = root / "figures"
    figures.figure2(histories, fig / "figure2.png", fig / "figure2.pdf", 5, 100, "ffpp-c23")
    figures.figure3(validations, fig / "figure3.png", fig / "figure3.pdf", 100, "ffpp-c23")

    manifest = root / "data" / "ffpp" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    pd.DataFrame({"key": list("abcd"), "dataset": "ffpp", "technique": ["real", "real", "Deepfakes", "FaceSwap"],
                  "compression": "c23", "video": ["1", "2", "1_2", "2_1"], "split": ["train", "test", "train", "test"],
                  "label": [0, 0, 1, 1], "path": "/x", "member": "", "target_id": "1", "source_id": ""}
                 ).to_csv(manifest, index=False)
    bench = root / "benchmarks" / "train_models" / "ffpp-c23" / "seed0.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\n125.5\t0:02:05\t812.3\n")

    out = root / "report" / "index.html"
    report.render_report(out, tables=table_files, figures=sorted(fig.iterdir()), manifests=[manifest],
                         config={"seeds": [0, 1], "methods": ["daml", "maml"]}, synthetic=["ffpp"],
                         benchmarks_dir=root / "benchmarks")
    return out


@pytest.mark.timeout(240)
def test_report_in_headless_chromium(tmp_path):
    page = build_report(tmp_path / "results")
    dom = subprocess.run(flags(tmp_path / "profile-dom") + ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-images-decoded="all"' in html, "embedded figures did not decode"
    assert 'data-images-count="2"' in html
    assert 'id="table-table1"' in html and 'id="table-table3"' in html and "Cross AVG" in html
    assert 'id="synthetic-banner"' in html

    shot = tmp_path / "report.png"
    run = subprocess.run(flags(tmp_path / "profile-shot") + ["--hide-scrollbars", "--window-size=1280,2400",
                         f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("DAML_SCREENSHOT_DIR"):  # keep a copy to look at
        keep = Path(os.environ["DAML_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep / "report_screenshot.png")
        shutil.copy(page, keep / "report.html")
