"""Coverage of the tables' 95% intervals on simulated cells, over a grid of designs.

For each scenario (`daml.stats.simulate.Scenario`: seeds, episodes and the variance of each
noise source), draws `--repetitions` simulated cells, computes the DAML - MAML style interval
of `daml.stats.intervals` and the former video-only interval, and counts how often each holds
the true difference. Also prints the median half-width and the per-seed AUC spread that the
scenario produces, to relate it to the tables.

    python benchmarks/bench_coverage.py --repetitions 400
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from daml.stats.intervals import Analysis, difference
from daml.stats.metrics import weighted_metric
from daml.stats.simulate import Scenario, simulate_cell, true_difference, video_bootstrap_interval

SCENARIOS = {
    "2 seeds x 3 episodes, seed-dominated (Table 2-like)": Scenario(seeds=2, episodes=3),
    "3 seeds x 3 episodes, seed-dominated": Scenario(seeds=3, episodes=3),
    "5 seeds x 3 episodes, seed-dominated": Scenario(seeds=5, episodes=3),
    "3 seeds x 2 episodes, cluster-dominated, true difference": Scenario(
        seeds=3, episodes=2, delta=0.4, seed_sd=0.2, cluster_sd=0.6, shared_cluster_sd=0.8),
    "2 seeds x 3 episodes, no training noise": Scenario(seeds=2, episodes=3, seed_sd=0.0,
                                                        episode_sd=0.0),
    "1 seed x 5 episodes, no training noise": Scenario(seeds=1, episodes=5, seed_sd=0.0,
                                                       episode_sd=0.3),
}


def seed_spread(scenario: Scenario, rng) -> float:
    """Per-seed AUC standard deviation (points) of one method in this scenario."""
    many = dataclasses.replace(scenario, seeds=30, episodes=1)
    cell = simulate_cell(many, rng)
    ones = np.ones((1, len(cell.labels)))
    aucs = [weighted_metric("auc", ones, cell.labels, cell.probs["a"][s][0])[0] for s in range(30)]
    return 100 * float(np.std(aucs, ddof=1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=400)
    parser.add_argument("--resamples", type=int, default=300)
    args = parser.parse_args(argv)
    print("| scenario | per-seed AUC sd | truth | coverage | former interval | median half-width |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, scenario in SCENARIOS.items():
        rng = np.random.default_rng(0)
        truth = 0.0 if scenario.delta == 0 else true_difference(scenario, 4000, rng)
        held = held_before = 0
        widths = []
        for r in range(args.repetitions):
            cell = simulate_cell(scenario, rng)
            est = Analysis({"c": cell}, n_resamples=args.resamples, seed=r).estimate(
                difference("a", "b", ["c"]))
            held += est.low <= truth <= est.high
            widths.append(est.half_width)
            _, low, high = video_bootstrap_interval(cell, "a", "b", args.resamples, rng)
            held_before += low <= truth <= high
        n = args.repetitions
        print(f"| {name} | {seed_spread(scenario, rng):.1f} | {100 * truth:+.2f} | "
              f"{100 * held / n:.1f}% | {100 * held_before / n:.1f}% | "
              f"{100 * float(np.median(widths)):.1f} |", flush=True)


if __name__ == "__main__":
    main()
