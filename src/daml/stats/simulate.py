"""Simulated detector scores with known seed, episode and cluster variance: the coverage test.

Description:
    A resampling interval earns trust only by holding the truth as often as it claims on
    data whose truth is known. `simulate_cell` draws one table cell as the workflow would
    produce it, with two methods "a" and "b":

    - a test population of `clusters` groups, each with `reals` real and `fakes` fake videos
      of `frames` frames (an FF++ pair is one cluster of 2 real and 2 fake videos);
    - frame logits  (2y - 1) / 2 * (separation + delta[m] + seed_m + episode_m + cluster_m)
      + shared cluster effect + shared video effect + frame noise, where seed_m is drawn per
      (method, seed), episode_m per (method, seed, episode), cluster_m per (method, cluster)
      (a method that suits some people better than others), and the shared effects and
      the frame noise make frames of one video and videos of one cluster alike;
    - probabilities are the logits' sigmoid.

    With delta = 0 the two methods are exchangeable, so the true expected AUC difference is
    exactly 0; otherwise `true_difference` estimates it by Monte Carlo over fresh
    populations, seeds and episodes.

    `video_bootstrap_interval` is the interval the tables printed before: a paired percentile
    bootstrap over test videos, real and fake resampled separately, seeds pooled into the
    statistic. It holds the test videos' noise only, and the coverage test shows it falling
    short once training seeds vary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daml.stats.intervals import Cell
from daml.stats.metrics import weighted_metric


@dataclass(frozen=True)
class Scenario:
    """The design and the variance components of a simulated cell (logit units).

    Arguments:
        clusters, reals, fakes, frames: test population (per cluster: real and fake videos).
        seeds, episodes: trainings per method and shot draws per training.
        separation: mean logit gap between fake and real frames of method "b".
        delta: extra separation of method "a" (0: no true difference).
        seed_sd, episode_sd, cluster_sd: per-(method, seed), per-(method, seed, episode) and
            per-(method, cluster) shifts of the separation.
        shared_cluster_sd, video_sd, frame_sd: logit effects shared by both methods per
            cluster and per video, and the frame noise of every run.
    """

    clusters: int = 20
    reals: int = 2
    fakes: int = 2
    frames: int = 8
    seeds: int = 2
    episodes: int = 4
    separation: float = 1.5
    delta: float = 0.0
    seed_sd: float = 0.5
    episode_sd: float = 0.15
    cluster_sd: float = 0.3
    shared_cluster_sd: float = 0.5
    video_sd: float = 0.5
    frame_sd: float = 1.0


def _population(scenario: Scenario, rng: np.random.Generator):
    per_cluster = scenario.reals + scenario.fakes
    videos = scenario.clusters * per_cluster
    cluster_of_video = np.repeat(np.arange(scenario.clusters), per_cluster)
    label_of_video = np.tile([0] * scenario.reals + [1] * scenario.fakes, scenario.clusters)
    video = np.repeat(np.arange(videos), scenario.frames)
    cluster = cluster_of_video[video]
    labels = label_of_video[video]
    shared = (rng.normal(0, scenario.shared_cluster_sd, scenario.clusters)[cluster]
              + rng.normal(0, scenario.video_sd, videos)[video])
    return video, cluster, labels, shared


def simulate_cell(scenario: Scenario, rng: np.random.Generator) -> Cell:
    """One simulated cell: methods "a" and "b", `seeds` x `episodes` runs each."""
    video, cluster, labels, shared = _population(scenario, rng)
    sign = 2 * labels - 1
    probs = {}
    for method, delta in (("a", scenario.delta), ("b", 0.0)):
        suits = rng.normal(0, scenario.cluster_sd, scenario.clusters)[cluster]
        runs = {}
        for seed in range(scenario.seeds):
            training = rng.normal(0, scenario.seed_sd)
            episodes = []
            for _ in range(scenario.episodes):
                gap = scenario.separation + delta + training + suits + rng.normal(0, scenario.episode_sd)
                logits = sign * gap / 2 + shared + rng.normal(0, scenario.frame_sd, len(labels))
                episodes.append(1 / (1 + np.exp(-logits)))
            runs[seed] = np.stack(episodes)
        probs[method] = runs
    keys = np.array([f"sim/{v}" for v in video])
    return Cell(labels, keys, np.array([f"sim:{c}" for c in cluster]),
                np.full(len(labels), "sim"), probs)


def true_difference(scenario: Scenario, draws: int, rng: np.random.Generator) -> float:
    """E[AUC(a) - AUC(b)] over populations, seeds and episodes, by Monte Carlo."""
    one = Scenario(**{**scenario.__dict__, "seeds": 1, "episodes": 1})
    total = 0.0
    for _ in range(draws):
        cell = simulate_cell(one, rng)
        ones = np.ones((1, len(cell.labels)))
        auc = {m: weighted_metric("auc", ones, cell.labels, cell.probs[m][0][0])[0] for m in "ab"}
        total += auc["a"] - auc["b"]
    return total / draws


def video_bootstrap_interval(cell: Cell, a: str, b: str, n_resamples: int, rng,
                             confidence: float = 0.95) -> tuple[float, float, float]:
    """The former interval: percentile bootstrap over videos by label, seeds pooled.

    Returns:
        (value, low, high) of the AUC difference a - b (episode means, seed mean).
    """
    _, video = np.unique(cell.keys, return_inverse=True)
    label_of = np.zeros(video.max() + 1, dtype=int)
    label_of[video] = cell.labels
    counts = np.zeros((n_resamples, len(label_of)))
    for label in (0, 1):
        members = np.flatnonzero(label_of == label)
        drawn = rng.integers(len(members), size=(n_resamples, len(members)))
        for r in range(n_resamples):
            counts[r, members] += np.bincount(drawn[r], minlength=len(members))
    weights = counts[:, video]
    ones = np.ones((1, len(cell.labels)))

    def statistic(w):
        return np.mean([
            np.mean([weighted_metric("auc", w, cell.labels, p) for p in cell.probs[a][s]], axis=0)
            - np.mean([weighted_metric("auc", w, cell.labels, p) for p in cell.probs[b][s]], axis=0)
            for s in cell.probs[a]
        ], axis=0)

    value = float(statistic(ones)[0])
    tail = (1 - confidence) / 2
    low, high = np.quantile(statistic(weights), [tail, 1 - tail])
    return value, float(low), float(high)
