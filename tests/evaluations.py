"""Evaluate-stage outputs written by hand, for the table, figure and report tests."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd


class EvaluationWriter:
    """Collects (source, target, method, seed, shots) results and writes them as the evaluate
    stage does: one metrics.json (and predictions.csv) per source, target face set, method
    and seed, under `root/evaluate/`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.jobs: dict[tuple, list[dict]] = defaultdict(list)
        self.predictions: dict[tuple, list[pd.DataFrame]] = defaultdict(list)

    def add(self, source, target, method, seed, shots, acc, auc, faceset=None, predictions=None):
        job = (source, faceset or target, method, seed)
        frame = {"acc": acc, "auc": auc, "ap": 0.5, "eer": 0.5, "loss": 0.7, "n": 100}
        video = {"acc": 0.1, "auc": 0.2, "ap": 0.5, "eer": 0.5, "n": 4}
        self.jobs[job].append({"target": target, "shots": shots, "frame": frame, "video": video})
        if predictions is not None:
            self.predictions[job].append(predictions.assign(target=target, shots=shots))

    def folder(self, source, faceset, method, seed) -> Path:
        return self.root / "evaluate" / source / faceset / method / f"seed{seed}"

    def write(self) -> tuple[list[Path], list[Path]]:
        """Write every job's files; returns (metrics paths, predictions paths)."""
        metrics, predictions = [], []
        for (source, faceset, method, seed), records in self.jobs.items():
            folder = self.folder(source, faceset, method, seed)
            folder.mkdir(parents=True, exist_ok=True)
            job = {"source": source, "faceset": faceset, "method": method, "seed": seed,
                   "evaluations": records}
            (folder / "metrics.json").write_text(json.dumps(job))
            metrics.append(folder / "metrics.json")
            parts = self.predictions.get((source, faceset, method, seed))
            if parts:
                pd.concat(parts).to_csv(folder / "predictions.csv", index=False)
                predictions.append(folder / "predictions.csv")
        return metrics, predictions
