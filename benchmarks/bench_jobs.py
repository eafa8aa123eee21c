"""Where a workflow run's time goes: per rule, the jobs' wall time against their fixed overhead.

Reads the Snakemake benchmark files of a finished run (`results/benchmarks/<rule>/...tsv`)
and sums them per rule, then measures, on this machine, what every job of a rule pays before
it computes anything: starting Python, importing the rule's modules (torch for the model
rules), and loading the face shards it reads. The difference is the rule's compute.

    python benchmarks/bench_jobs.py --results results [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# what each rule's script imports before it does anything (its heaviest module)
IMPORTS = {
    "generate_benchmark": "daml.data.synthetic",
    "index_dataset": "daml.data.manifest",
    "extract_frames": "daml.frames",
    "align_faces": "daml.faces",
    # the model rules also import torch._dynamo: torch.optim does at the first optimizer
    "train_models": "daml.train, torch._dynamo",
    "evaluate_models": "daml.evaluate, torch._dynamo",
    # earlier structures' rule names, to measure runs made before them
    "train_model": "daml.train, torch._dynamo",
    "adapt_model": "daml.adapt, torch._dynamo",
    "evaluate_model": "daml.evaluate, torch._dynamo",
    "make_table": "daml.tables",
    "plot_figure": "daml.figures",
    "render_report": "daml.report",
}


def rule_times(results: Path) -> pd.DataFrame:
    """Per rule: jobs, total and mean wall seconds, from the benchmark TSVs."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0]
        frame = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": rule, "seconds": float(frame["s"].mean())})
    table = pd.DataFrame(rows).groupby("rule")["seconds"].agg(["count", "sum", "mean"])
    return table.rename(columns={"count": "jobs", "sum": "total_s", "mean": "mean_s"})


def timed(code: str, repeats: int) -> float:
    """Median wall seconds of a fresh `python -c code` (what a job's process pays)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def shard_load_seconds(results: Path, repeats: int) -> dict[str, float]:
    """Seconds to load every face set's shards at the trained models' input size."""
    out = {}
    for folder in sorted((results / "faces").iterdir()):
        shards = sorted(folder.glob("shard*.npz"))
        if not shards:
            continue
        code = ("import torch; from daml.facedata import load_faces; "
                f"load_faces({[str(s) for s in shards]!r}, 32)")
        base = timed("import torch, daml.facedata", repeats)
        out[folder.name] = max(0.0, timed(code, repeats) - base)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    table = rule_times(args.results)
    python = timed("pass", args.repeats)
    table["start_and_import_s"] = [
        timed(f"import {IMPORTS[r]}", args.repeats) if r in IMPORTS else float("nan")
        for r in table.index
    ]
    table["overhead_share"] = (table["start_and_import_s"] / table["mean_s"]).clip(upper=1.0)
    print(f"python start: {python:.2f} s")
    print(json.dumps({"shard_load_s": shard_load_seconds(args.results, args.repeats)}))
    print(table.round(2).to_string())
    total = table["total_s"].sum()
    print(f"total job seconds {total:.0f}; spent starting and importing "
          f"{(table['jobs'] * table['start_and_import_s']).sum():.0f}")


if __name__ == "__main__":
    main()
