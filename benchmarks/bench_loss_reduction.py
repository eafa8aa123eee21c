"""What eq. 3's sum does to DAML: task weights and loss curves under `train.loss_reduction`.

Trains DAML (and MAML, for Figure 2) on one source of a finished run's face shards with the
run's train settings, once with `loss_reduction: mean` and once with `sum`, same seeds, and
reports from each history.csv:

- the task weights d(L sigmoid(L))/dL that the outer gradient applied: their mean, their
  range, and the ratio of the largest to the smallest weight within an iteration (what
  DAML's difficulty weighting amounts to: 1 means every task counts the same, as in MAML);
- the query loss L of a task (a sum grows with the batch size);
- the best validation AUC after the meta-test fine-tuning (selection's score).

With `--figures DIR` it also draws Figure 2 for each reduction there.

    python benchmarks/bench_loss_reduction.py --results results --source ffpp-c23 --seeds 0 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import pandas as pd

from daml import config as daml_config
from daml.adapt import AdaptSettings
from daml.figures import DPI, figure2
from daml.train import TrainSettings, train_model

REPO = Path(__file__).resolve().parents[1]


def run(results: Path, config: dict, source: str, seeds: list[int], work: Path) -> pd.DataFrame:
    domain = config["sources"][source]
    shards = sorted((results / "faces" / domain["faceset"]).glob("shard*.npz"))
    train = TrainSettings(**{**config["train"], "threads": 1})
    selection = AdaptSettings(**{**config["adapt"], "episodes": 1, "threads": 1})
    rows = []
    for reduction in ("mean", "sum"):
        settings = dataclasses.replace(train, loss_reduction=reduction)
        for method in ("daml", "maml"):
            for seed in seeds:
                folder = work / reduction / method / f"seed{seed}"
                folder.mkdir(parents=True)
                summary = train_model(shards, domain, method, seed, settings, selection,
                                      folder / "model.pt", folder / "history.csv",
                                      folder / "validation.csv", folder / "checkpoint.pt")
                history = pd.read_csv(folder / "history.csv")
                spread = history.groupby("iteration")["weight"].agg(lambda w: w.max() / w.min())
                rows.append({
                    "reduction": reduction, "method": method, "seed": seed,
                    "query_loss": history["query_loss"].mean(),
                    "weight_mean": history["weight"].mean(),
                    "weight_min": history["weight"].min(), "weight_max": history["weight"].max(),
                    "max_over_min_in_iteration": spread.mean(),
                    "val_auc": 100 * summary["auc"],
                    "history": str(folder / "history.csv"),
                })
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "history"}), flush=True)
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--config", type=Path, nargs="+", default=[REPO / "config.yaml"])
    parser.add_argument("--source", default="ffpp-c23")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--figures", type=Path, help="draw Figure 2 per reduction into this folder")
    args = parser.parse_args(argv)
    config = daml_config.load_config_files(args.config, REPO / "workflow/schemas/config.schema.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        frame = run(args.results, config, args.source, args.seeds, Path(tmp))
        if args.figures:
            for reduction, part in frame.groupby("reduction"):
                histories = {m: list(p["history"]) for m, p in part.groupby("method", sort=False)}
                figure2({m: histories[m] for m in ("maml", "daml")},
                        args.figures / f"figure2-{reduction}.png",
                        args.figures / f"figure2-{reduction}.pdf",
                        config["figures"]["smooth_window"], DPI, args.source)
    columns = [c for c in frame.columns if c not in ("seed", "history")]
    print(frame[columns].groupby(["reduction", "method"]).mean().to_string(
        float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
