"""Which meta-test rule to use, chosen on validation data only; test AUC beside it, not used.

Reads a finished workflow run (trained models and face shards under `results/`). For every
(source, target) row of the chosen tables, every method, seed and episode, it adapts the
trained model on leak-free shots of the target's train split by each candidate rule of
`daml.adapt` and scores it twice:

- on the target's **val** split (shots leak-free against it): the number the rule is chosen by;
- on the target's **test** split (shots leak-free against it, as the workflow draws them):
  a descriptive ablation, printed beside, never read by the choice.

Candidates:

    finetune, source     Adam at adapt.lr for adapt.steps, batch-norm statistics of training kept
    finetune, shots      the same, statistics re-estimated once on the shots
    finetune, batch      the same in train mode, statistics drifting towards the shots
    inner                meta-training's inner loop (eq. 2 at the model's train.inner_lr and
                         inner_steps, train-mode batch norm), what theta was optimised for
    as trained           no adaptation (reference, not a candidate)

The rule: the candidate with the highest val AUC averaged over rows, methods, seeds and
episodes. Its margin over the runner-up is given with a 95% interval over the paired
(row, method, seed, episode) differences.

    python benchmarks/bench_meta_test.py --results results --tables table1 table2 --episodes 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from daml import config as daml_config
from daml.adapt import AdaptSettings, InnerLoop, adapted_copy, choose_shots, episode_seed
from daml.evaluate import predict, target_techniques
from daml.facedata import load_faces
from daml.metrics import frame_metrics
from daml.models import load_model
from daml.runtime import runtime

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = {  # name -> AdaptSettings changes
    "finetune, source": {"rule": "finetune", "bn_mode": "source"},
    "finetune, shots": {"rule": "finetune", "bn_mode": "shots"},
    "finetune, batch": {"rule": "finetune", "bn_mode": "batch"},
    "inner": {"rule": "inner"},
}
AS_TRAINED = "as trained"


def auc(model, faces, device, dtype) -> float:
    probs = predict(model, faces.images, 256, device, dtype)
    return 100.0 * frame_metrics(faces.table["label"].to_numpy(), probs)["auc"]


def measure(results: Path, config: dict, pairs: list[tuple[str, str]], episodes: int,
            precision: str) -> pd.DataFrame:
    device, dtype = runtime("cpu", precision)
    rule = AdaptSettings(**{**config["adapt"], "threads": 0})
    rows = []
    for source, target in pairs:
        domain = config["targets"][target]
        shards = sorted((results / "faces" / domain["faceset"]).glob("shard*.npz"))
        techniques = target_techniques(domain)
        for method in config["methods"]:
            for seed in config["seeds"]:
                model_pt = results / "train" / source / method / f"seed{seed}" / "model.pt"
                model, payload = load_model(model_pt, device)
                inner = InnerLoop.of(payload["settings"])
                size = int(payload["image_size"])
                train = load_faces(shards, size, techniques, ["train"])
                for split in ("val", "test"):
                    scored = load_faces(shards, size, techniques, [split])
                    base = {"source": source, "target": target, "method": method, "seed": seed,
                            "split": split}
                    rows.append({**base, "episode": -1, "rule": AS_TRAINED,
                                 "auc": auc(model, scored, device, dtype)})
                    for episode in range(episodes):
                        positions = choose_shots(train.table, scored.table, rule.shots,
                                                 episode_seed(seed, episode), target,
                                                 rule=domain["leak_rule"])
                        shots = train.subset(positions)
                        for name, changes in CANDIDATES.items():
                            settings = dataclasses.replace(rule, **changes)
                            tuned, _ = adapted_copy(model, shots, settings,
                                                    episode_seed(seed, episode), device, dtype,
                                                    inner)
                            rows.append({**base, "episode": episode, "rule": name,
                                         "auc": auc(tuned, scored, device, dtype)})
                print(json.dumps({"source": source, "target": target, "method": method,
                                  "seed": seed}), flush=True)
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Mean AUC per rule and split (rows x methods), and the validation choice."""
    table = frame.pivot_table(index=["target", "method"], columns=["split", "rule"], values="auc",
                              aggfunc="mean")
    means = frame.groupby(["split", "rule"])["auc"].mean().unstack(0)
    val = frame[(frame["split"] == "val") & (frame["rule"] != AS_TRAINED)]
    ranked = val.groupby("rule")["auc"].mean().sort_values(ascending=False)
    best, second = ranked.index[0], ranked.index[1]
    keys = ["source", "target", "method", "seed", "episode"]
    paired = (val[val["rule"] == best].set_index(keys)["auc"]
              - val[val["rule"] == second].set_index(keys)["auc"]).dropna()
    half = stats.t.ppf(0.975, len(paired) - 1) * paired.std(ddof=1) / np.sqrt(len(paired))
    choice = {"rule": best, "runner_up": second, "margin": float(paired.mean()),
              "interval": [float(paired.mean() - half), float(paired.mean() + half)],
              "pairs": int(len(paired))}
    return table, means, choice


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--config", type=Path, nargs="+", default=[REPO / "config.yaml"],
                        help="the config file(s) the run used, in order")
    parser.add_argument("--tables", nargs="+", default=["table1", "table2"])
    parser.add_argument("--episodes", type=int, default=0, help="0: adapt.episodes of the config")
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (CPU)")
    parser.add_argument("--out", type=Path, help="write every score as CSV here")
    args = parser.parse_args(argv)
    config = daml_config.load_config_files(args.config, REPO / "workflow/schemas/config.schema.yaml")
    pairs = list(dict.fromkeys((e["source"], e["target"]) for t in args.tables
                               for e in config["tables"][t]))
    frame = measure(args.results, config, pairs, args.episodes or config["adapt"]["episodes"],
                    args.precision)
    if args.out:
        frame.to_csv(args.out, index=False)
    table, means, choice = summary(frame)
    print(table.to_string(float_format=lambda v: f"{v:.1f}"))
    print(means.to_string(float_format=lambda v: f"{v:.2f}"))
    print(json.dumps(choice))


if __name__ == "__main__":
    main()
