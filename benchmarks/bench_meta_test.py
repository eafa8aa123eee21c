"""What the meta-test fine-tuning does to test AUC, and which part of it: weights or batch norm.

Reads a finished workflow run (trained models and face shards under `results/`) and, for
every method and seed of one source and each of its targets, scores the target's test split
with the trained model as it is and after the meta-test fine-tuning of `daml.adapt` on the
same leak-free shots, once per batch-norm rule:

    as trained              theta itself (the zero-shot companion rows)
    source                  fine-tuned, running statistics of training kept (eval-mode BN)
    shots                   fine-tuned, running statistics re-estimated once on the shots
    batch                   fine-tuned in train mode, running statistics drift to the shots
    batch, weights fixed    the `batch` rule at learning rate 0: only the statistics move
    shots, weights fixed    the `shots` rule with no step: only the statistics change

The last two separate the effect of the batch-norm statistics from that of the weights.
Frame-level AUC in percent, mean over seeds; "mean" averages the targets.

    python benchmarks/bench_meta_test.py --results results --source ffpp-c23 \
        --targets celebdf dfdc wilddeepfake
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pandas as pd
import torch
import yaml

from daml import config as daml_config
from daml.adapt import AdaptSettings, adapted_copy, choose_shots
from daml.evaluate import predict, target_techniques
from daml.facedata import load_faces, load_table
from daml.metrics import frame_metrics
from daml.model import load_model

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {  # name -> (bn_mode, learning rate factor, steps factor)
    "source": ("source", 1.0, 1),
    "shots": ("shots", 1.0, 1),
    "batch": ("batch", 1.0, 1),
    "batch, weights fixed": ("batch", 0.0, 1),
    "shots, weights fixed": ("shots", 1.0, 0),
}


def auc(model, faces, device) -> float:
    probs = predict(model, faces.images, 256, device)
    return 100.0 * frame_metrics(faces.table["label"].to_numpy(), probs)["auc"]


def measure(results: Path, config: dict, source: str, targets: list[str], shots: int) -> pd.DataFrame:
    device = torch.device("cpu")
    rule = AdaptSettings(**{**config["adapt"], "threads": 0})
    rows = []
    for target in targets:
        domain = config["targets"][target]
        shards = sorted((results / "faces" / domain["faceset"]).glob("shard*.npz"))
        techniques = target_techniques(domain)
        for method in config["methods"]:
            for seed in config["seeds"]:
                model_pt = results / "train" / source / method / f"seed{seed}" / "model.pt"
                model, payload = load_model(model_pt, device)
                size = int(payload["image_size"])
                test = load_faces(shards, size, techniques, ["test"])
                train = load_table(shards, techniques, ["train"])
                positions = choose_shots(train, test.table, shots, seed, target,
                                         rule=domain["leak_rule"])
                chosen = load_faces(shards, size, techniques, ["train"], positions)
                row = {"target": target, "method": method, "seed": seed,
                       "as trained": auc(model, test, device)}
                for name, (bn_mode, lr_factor, steps_factor) in VARIANTS.items():
                    settings = dataclasses.replace(rule, bn_mode=bn_mode, lr=rule.lr * lr_factor,
                                                   steps=rule.steps * steps_factor)
                    tuned, _ = adapted_copy(model, chosen, settings, seed, device, None)
                    row[name] = auc(tuned, test, device)
                rows.append(row)
                print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}),
                      flush=True)
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    columns = ["as trained", *VARIANTS]
    per_target = frame.groupby(["method", "target"], sort=False)[columns].mean()
    means = frame.groupby(["method", "target"], sort=False)[columns].mean().groupby("method", sort=False).mean()
    means["target"] = "mean"
    return pd.concat([per_target.reset_index(), means.reset_index()]).sort_values(
        ["method", "target"], key=lambda s: s.map(lambda v: (v == "mean", v)), kind="stable")


def merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--config", type=Path, nargs="+", default=[REPO / "config.yaml"],
                        help="the config file(s) the run used, in order")
    parser.add_argument("--source", default="ffpp-c23")
    parser.add_argument("--targets", nargs="+", default=["celebdf", "dfdc", "wilddeepfake"])
    parser.add_argument("--shots", type=int, default=0, help="0: adapt.shots of the config")
    parser.add_argument("--out", type=Path, help="write the per-seed rows as CSV here")
    args = parser.parse_args(argv)
    config: dict = {}
    for path in args.config:  # later files override earlier ones key by key, as Snakemake does
        merge(config, yaml.safe_load(path.read_text()) or {})
    daml_config.validate(config, REPO / "workflow/schemas/config.schema.yaml")
    frame = measure(args.results, config, args.source, args.targets, args.shots or config["adapt"]["shots"])
    if args.out:
        frame.to_csv(args.out, index=False)
    print(summary(frame).to_string(index=False, float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
