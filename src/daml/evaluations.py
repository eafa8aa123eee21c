"""The evaluation stage's results, looked up by (source, target, method, seed, shots).

Description:
    Each evaluation job writes one metrics.json (with its source, method and seed, and one
    record per target and shot count) and a predictions.csv beside it (`daml.evaluate`).
    Tables and figures read them through `Evaluations`, built from the files Snakemake hands
    them, so no path is parsed or rebuilt here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from daml.errors import DamlError

Key = tuple[str, str, str, int, int]  # source, target, method, seed, shots


class Evaluations:
    """Metrics and predictions of evaluation jobs.

    Arguments:
        metrics: metrics.json files of the evaluate stage (any order).
        predictions: predictions.csv files, each beside its metrics.json (may be empty).
    """

    def __init__(self, metrics: Iterable[str | Path], predictions: Iterable[str | Path] = ()):
        self._records: dict[Key, dict] = {}
        self._where: dict[Key, Path] = {}
        for path in map(Path, metrics):
            job = _read_json(path)
            for record in job["evaluations"]:
                key = (job["source"], record["target"], job["method"], int(job["seed"]),
                       int(record["shots"]))
                self._records[key] = record
                self._where[key] = path
        self._prediction_files = {Path(p).parent: Path(p) for p in predictions}
        self._loaded: dict[Path, pd.DataFrame] = {}

    def __contains__(self, key: Key) -> bool:
        return key in self._records

    @property
    def has_predictions(self) -> bool:
        return bool(self._prediction_files)

    def _record(self, key: Key) -> dict:
        if key not in self._records:
            source, target, method, seed, shots = key
            raise DamlError(
                f"no evaluation of {source} -> {target}, {method}, seed {seed}, {shots} shots among "
                "the stage's inputs: the table's or figure's entries and its inputs disagree "
                "(workflow/rules/common.smk, evaluation_rows)"
            )
        return self._records[key]

    def metric(self, key: Key, metric: str, level: str = "frame") -> float:
        """One metric as a fraction (NaN if recorded as NaN or null)."""
        record = self._record(key)
        try:
            value = record[level][metric.lower()]
        except (KeyError, TypeError):
            raise DamlError(f"{self._where[key]}: no {level}-level {metric.lower()!r} for "
                            f"{key[1]} at {key[4]} shots; expected the metrics.json format of "
                            "docs/architecture.md") from None
        return float("nan") if value is None else float(value)

    def predictions(self, key: Key) -> pd.DataFrame:
        """The predictions (`key`, `frame`, `label`, `prob`, ...) of one evaluation."""
        self._record(key)
        folder = self._where[key].parent
        if folder not in self._prediction_files:
            raise DamlError(f"{folder / 'predictions.csv'}: not among the stage's inputs")
        path = self._prediction_files[folder]
        if path not in self._loaded:
            self._loaded[path] = read_predictions(path)
        frame = self._loaded[path]
        _, target, _, _, shots = key
        return frame[(frame["target"] == target) & (frame["shots"] == shots)].reset_index(drop=True)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """One evaluation job's predictions.csv."""
    path = Path(path)
    if not path.is_file():
        raise DamlError(f"{path}: predictions file is missing; run the evaluate stage for it "
                        f"(`snakemake {path}`)")
    frame = pd.read_csv(path, dtype={"key": str, "video": str, "target": str})
    missing = [c for c in ("target", "shots", "key", "frame", "label", "prob") if c not in frame.columns]
    if missing:
        raise DamlError(f"{path}: lacks columns {missing}; expected the predictions.csv format of "
                        "docs/architecture.md")
    return frame


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DamlError(f"{path}: metrics file is missing; run the evaluate stage for it "
                        f"(`snakemake {path}`)")
    with open(path) as handle:
        job = json.load(handle)  # NaN where a metric is undefined
    missing = [k for k in ("source", "method", "seed", "evaluations") if k not in job]
    if missing:
        raise DamlError(f"{path}: lacks {missing}; expected the metrics.json of the evaluate "
                        "stage (docs/architecture.md); rerun it")
    return job
