"""Table numbers with intervals that hold training seeds, shot episodes and the test population.

Description:
    A table number is a linear combination of per-(cell, method) metrics: one cell's AUC of
    a method, a difference of two methods on a cell, or either averaged over several cells
    (Cross AVG, a table's mean). For every seed s it is

        theta_s = sum over terms of coef * (mean over the cell's episodes of the metric),

    computed on the whole test split, and the reported value is their mean over seeds.
    Three sources of noise move it, and its variance is the sum of two estimated parts:

    - Training and shots, `seed_var`: the sample variance of theta_s over seeds divided by
      the number of seeds. Seeds are independent trainings (and independent shot draws), so
      this holds the seed-to-seed noise of training together with the episode noise left in
      each seed's episode mean. Comparisons are paired: both methods of a seed start from
      the same initial weights and are fine-tuned on the same shots, and the difference is
      taken per seed. With one seed only the episodes are seen (`episode_var`: their
      variance within the seed over their count) and the interval says so.
    - The test population, `test_var`: the variance of the same number over cluster
      bootstrap resamples of the test faces (`daml.stats.resampling`), every term, seed and
      episode scored on the same resample, with the trained models and shots held fixed.
      Clusters shared by several cells are drawn once, so a mean over cells is resampled
      jointly.

    Holding the seeds fixed in the bootstrap and the test set fixed across seeds counts
    the seed-by-test-set interaction in both parts, so the sum errs on the wide side.
    The interval is value +- t * sqrt(seed_var + test_var), with Welch-Satterthwaite degrees
    of freedom (seeds - 1 for the first part, units - 1 for the second). With 2 or 3 seeds
    the first part has 1 or 2 degrees of freedom: t is 12.7 or 4.3, so an interval is wide
    unless the seeds agree closely. That is what two or three trainings can say; the
    coverage test (tests/unit/test_stats.py) checks that the 95% interval holds the truth
    90-99% of the time on simulated scores with known seed, episode and cluster variance.

References:
    Satterthwaite, "An approximate distribution of estimates of variance components" (1946);
    Bouthillier et al., "Accounting for variance in machine learning benchmarks" (MLSys 2021)
    on seeds as a source of variance; Davison and Hinkley (1997) on cluster resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from daml.errors import DamlError
from daml.stats.metrics import resampled_metric, weighted_metric
from daml.stats.resampling import ClusterBootstrap, merge_units

N_RESAMPLES = 1000  # the bootstrap estimates a variance, not tail quantiles: 1000 is plenty
CONFIDENCE = 0.95
RANDOM_SEED = 0
PREDICTION_COLUMNS = ("episode", "key", "frame", "cluster", "dataset", "label", "prob")


@dataclass(frozen=True)
class Cell:
    """One table cell (a target at a shot count): its test faces and every run on them.

    Attributes:
        labels, keys, clusters, strata: per test face its label, video key, test cluster
            and dataset (the resampling stratum).
        probs: method -> seed -> (episodes, faces) probabilities of fake.
    """

    labels: np.ndarray
    keys: np.ndarray
    clusters: np.ndarray
    strata: np.ndarray
    probs: Mapping[str, Mapping[int, np.ndarray]]


def cell_from_predictions(runs: Mapping[str, Mapping[int, pd.DataFrame]], what: str) -> Cell:
    """A `Cell` from each method's and seed's predictions of one target and shot count.

    Arguments:
        runs: method -> seed -> the rows of predictions.csv of that target and shot count
            (`PREDICTION_COLUMNS`), all episodes.
        what: names the cell in messages.

    Raises:
        DamlError naming `what` when the runs do not hold the same test faces.
    """
    first = None
    probs: dict[str, dict[int, np.ndarray]] = {}
    for method, seeds in runs.items():
        for seed, frame in seeds.items():
            missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
            if missing:
                raise DamlError(f"{what}: predictions lack {missing}; rerun the evaluate stage")
            if frame.empty:
                raise DamlError(f"{what}: no predictions of {method}, seed {seed}; rerun its "
                                "evaluation")
            episodes = []
            for _, part in frame.groupby("episode", sort=True):
                faces = part[["key", "frame"]].to_numpy()
                if first is None:
                    first = part.reset_index(drop=True)
                    reference = faces
                if len(faces) != len(reference) or not (faces == reference).all():
                    raise DamlError(
                        f"{what}: the predictions of some method, seed or episode are not on "
                        "the same test faces; rerun their evaluations from the same face shards"
                    )
                episodes.append(part["prob"].to_numpy(dtype=float))
            probs.setdefault(method, {})[int(seed)] = np.stack(episodes)
    if first is None:
        raise DamlError(f"{what}: no predictions")
    return Cell(first["label"].to_numpy(dtype=int), first["key"].astype(str).to_numpy(),
                first["cluster"].astype(str).to_numpy(), first["dataset"].astype(str).to_numpy(),
                probs)


@dataclass(frozen=True)
class Estimate:
    """A table number, its interval and the parts of its variance (all in metric units).

    Attributes:
        value: mean over seeds.
        low, high: the interval (`confidence`), value -+ t(df) * se.
        se, df: standard error and Welch-Satterthwaite degrees of freedom.
        seed_var, episode_var, test_var: the variance parts (module docstring); episode_var
            is used only with one seed.
        per_seed: theta_s of every seed.
        n_seeds, n_episodes, n_units: seeds, fewest episodes of a term, resampling units.
        noise: what the interval holds, e.g. ("seeds", "episodes", "test clusters").
    """

    value: float
    low: float
    high: float
    se: float
    df: float
    seed_var: float
    episode_var: float
    test_var: float
    per_seed: tuple[float, ...]
    n_seeds: int
    n_episodes: int
    n_units: int
    noise: tuple[str, ...] = field(default=())

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    def clipped(self, low: float, high: float) -> "Estimate":
        """The interval cut to the range the number can take (an AUC lies in [0, 1])."""
        return Estimate(self.value, max(self.low, low), min(self.high, high), self.se, self.df,
                        self.seed_var, self.episode_var, self.test_var, self.per_seed,
                        self.n_seeds, self.n_episodes, self.n_units, self.noise)

    def scaled(self, factor: float) -> "Estimate":
        """The same estimate in other units (fractions to percent: 100)."""
        f2 = factor * factor
        return Estimate(self.value * factor, self.low * factor, self.high * factor,
                        self.se * factor, self.df, self.seed_var * f2, self.episode_var * f2,
                        self.test_var * f2, tuple(v * factor for v in self.per_seed),
                        self.n_seeds, self.n_episodes, self.n_units, self.noise)


Term = tuple[Hashable, str]  # (cell name, method)


class Analysis:
    """Every cell of a table, resampled jointly, and the estimates of numbers built on them.

    Arguments:
        cells: cell name -> `Cell`.
        metric: "auc" or "acc" (`daml.stats.metrics`).
        n_resamples, seed: of the cluster bootstrap.
        confidence: of the intervals.

    Example:
        >>> analysis = Analysis({"celebdf": cell})
        >>> analysis.estimate({("celebdf", "daml"): 1.0, ("celebdf", "maml"): -1.0})
    """

    def __init__(self, cells: Mapping[Hashable, Cell], metric: str = "auc",
                 n_resamples: int = N_RESAMPLES, seed: int = RANDOM_SEED,
                 confidence: float = CONFIDENCE):
        if not cells:
            raise DamlError("no cells to analyse")
        self.cells = dict(cells)
        self.metric = metric
        self.confidence = confidence
        names = list(self.cells)
        units = merge_units([self.cells[n].keys for n in names],
                            [self.cells[n].clusters for n in names])
        self.units = dict(zip(names, units))
        strata = np.empty(max(int(u.max()) + 1 for u in units), dtype=object)
        for name in names:
            strata[self.units[name]] = self.cells[name].strata
        self.bootstrap = ClusterBootstrap(strata.astype(str), n_resamples, seed)
        self._observed: dict[tuple, np.ndarray] = {}
        self._resampled: dict[tuple, np.ndarray] = {}

    def _runs(self, name: Hashable, method: str) -> Mapping[int, np.ndarray]:
        cell = self.cells[name]
        if method not in cell.probs:
            raise DamlError(f"cell {name}: no predictions of method {method!r}")
        return cell.probs[method]

    def observed(self, name: Hashable, method: str, seed: int) -> np.ndarray:
        """The metric of every episode of one run, on the whole test split."""
        key = (name, method, seed)
        if key not in self._observed:
            cell = self.cells[name]
            ones = np.ones((1, len(cell.labels)))
            self._observed[key] = np.array([
                weighted_metric(self.metric, ones, cell.labels, p)[0]
                for p in self._runs(name, method)[seed]
            ])
        return self._observed[key]

    def resampled(self, name: Hashable, method: str, seed: int) -> np.ndarray:
        """The episode mean of one run's metric on every bootstrap resample."""
        key = (name, method, seed)
        if key not in self._resampled:
            cell = self.cells[name]
            self._resampled[key] = np.mean([
                resampled_metric(self.metric, self.bootstrap.counts, self.units[name],
                                 cell.labels, p)
                for p in self._runs(name, method)[seed]
            ], axis=0)
        return self._resampled[key]

    def estimate(self, terms: Mapping[Term, float]) -> Estimate:
        """The estimate of sum(coef * metric of (cell, method)) averaged over seeds.

        Arguments:
            terms: (cell name, method) -> coefficient, e.g. {(c, "daml"): 1, (c, "maml"): -1}
                for a difference, or 1/k per cell for a mean over k cells.
        """
        if not terms:
            raise DamlError("an estimate needs at least one term")
        seeds = None
        for name, method in terms:
            have = sorted(self._runs(name, method))
            if seeds is None:
                seeds = have
            elif have != seeds:
                raise DamlError(f"cell {name}, {method}: seeds {have} differ from {seeds}; "
                                "every method of a comparison needs the same seeds")
        per_seed = np.array([
            sum(coef * self.observed(n, m, s).mean() for (n, m), coef in terms.items())
            for s in seeds
        ])
        episodes = min(len(self._runs(n, m)[seeds[0]]) for n, m in terms)
        units = len({int(u) for n, _ in terms for u in np.unique(self.units[n])})
        if not np.isfinite(per_seed).all():
            return _undefined(per_seed, len(seeds), episodes, units)
        resampled = np.mean([
            sum(coef * self.resampled(n, m, s) for (n, m), coef in terms.items()) for s in seeds
        ], axis=0)
        valid = resampled[np.isfinite(resampled)]
        test_var = float(np.var(valid, ddof=1)) if len(valid) >= 0.5 * len(resampled) else math.nan
        parts, noise = [], []
        seed_var = episode_var = 0.0
        if len(seeds) >= 2:
            seed_var = float(np.var(per_seed, ddof=1)) / len(seeds)
            parts.append((seed_var, len(seeds) - 1))
            noise += ["seeds", "episodes"] if episodes > 1 else ["seeds"]
        elif episodes >= 2:
            episode_var = self._episode_var(terms, seeds[0])
            parts.append((episode_var, episodes - 1))
            noise.append("episodes")
        parts.append((test_var, units - 1))
        noise.append("test clusters")
        return _interval(float(per_seed.mean()), parts, self.confidence, seed_var, episode_var,
                         test_var, per_seed, len(seeds), episodes, units, tuple(noise))

    def _episode_var(self, terms: Mapping[Term, float], seed: int) -> float:
        """One seed: the episode-mean's variance, summed over cells (independent draws);
        within a cell the methods share their episodes, so they are combined per episode."""
        total = 0.0
        for name in {n for n, _ in terms}:
            per_episode = sum(coef * self.observed(n, m, seed)
                              for (n, m), coef in terms.items() if n == name)
            if np.ndim(per_episode) and len(per_episode) > 1:
                total += float(np.var(per_episode, ddof=1)) / len(per_episode)
        return total


def _interval(value, parts, confidence, seed_var, episode_var, test_var, per_seed, n_seeds,
              episodes, units, noise) -> Estimate:
    variance = sum(v for v, _ in parts)
    if not math.isfinite(variance):
        return _undefined(per_seed, n_seeds, episodes, units, value)
    se = math.sqrt(variance)
    half = combined_half_width(parts, 0.5 + confidence / 2)
    df = effective_df(se, half, 0.5 + confidence / 2)
    return Estimate(value, value - half, value + half, se, df, seed_var, episode_var, test_var,
                    tuple(float(v) for v in per_seed), n_seeds, episodes, units, noise)


def combined_half_width(parts: Sequence[tuple[float, float]], quantile: float) -> float:
    """Each part's own t half-width (variance, degrees of freedom), added in quadrature.

    Why not one t with Welch-Satterthwaite degrees of freedom: with two seeds the seed
    part's variance comes from one degree of freedom and is often far below its mean by
    chance (a chi-square with 1 df is below a tenth of its mean a quarter of the time);
    the formula then sees a small seed part, gives many degrees of freedom and a t near 2,
    and the interval misses. Simulated, that held the truth in 88% of 400 repetitions where
    this rule holds it in the 90-99% the coverage test asks (tests/unit/test_stats.py).
    Taking each part at its own degrees of freedom gives the seeds' t(1) interval when
    they dominate and the bootstrap's normal interval when the test population does.
    """
    total = 0.0
    for variance, df in parts:
        if variance > 0:
            total += (float(stats.t.ppf(quantile, df)) if df > 0 else math.inf) ** 2 * variance
    return math.sqrt(total)


def effective_df(se: float, half: float, quantile: float) -> float:
    """The degrees of freedom whose t quantile turns `se` into `half` (inf: normal)."""
    if se <= 0 or half <= 0 or not math.isfinite(half):
        return math.nan if not math.isfinite(half) else math.inf
    ratio = half / se
    normal = float(stats.norm.ppf(quantile))
    if ratio <= normal:
        return math.inf
    low, high = 1e-3, 1e7
    for _ in range(200):  # bisection on log df: t quantiles fall as df grows
        mid = math.sqrt(low * high)
        if stats.t.ppf(quantile, mid) > ratio:
            low = mid
        else:
            high = mid
    return math.sqrt(low * high)


def _undefined(per_seed, n_seeds, episodes, units, value=math.nan) -> Estimate:
    nan = math.nan
    return Estimate(value, nan, nan, nan, nan, nan, nan, nan,
                    tuple(float(v) for v in per_seed), n_seeds, episodes, units, ())


def difference(a: str, b: str, names: Sequence[Hashable]) -> dict[Term, float]:
    """Terms of mean over `names` of metric(a) - metric(b)."""
    k = len(names)
    return {**{(n, a): 1.0 / k for n in names}, **{(n, b): -1.0 / k for n in names}}


def mean_of(method: str, names: Sequence[Hashable]) -> dict[Term, float]:
    """Terms of the mean over `names` of one method's metric."""
    return {(n, method): 1.0 / len(names) for n in names}
