"""Is DAML better? Paired bootstrap intervals for AUC differences between two methods.

Description:
    Two methods scored on the same test faces (same target, same shots, every seed) are
    compared by the difference of their frame-level AUC, averaged over seeds, and for a
    "Cross AVG" cell over its targets too. Its 95% interval comes from a paired bootstrap
    over test videos: each resample draws a target's videos with replacement and weights
    every frame by how often its video was drawn; both methods and all seeds are scored on
    that same resample, so the interval reflects which videos happened to be in the test
    split, not seed noise alone (the seeds are pooled into the statistic). Frames of one
    video are never split, because they are not independent. Real and fake videos are
    resampled separately (a stratified bootstrap), so every resample holds both classes and
    its AUC is defined. Intervals are percentile
    intervals from `scipy.stats.bootstrap` (`N_RESAMPLES` resamples, a fixed random seed,
    so a table is reproducible). A difference is "distinguishable from zero" when its
    interval excludes zero.

    The weighted AUC of a resample is computed in linear time from a presorted order
    (`WeightedAuc`): the probability that a random fake frame outranks a random real frame,
    ties counting one half, with every frame counted as often as its video was drawn.

References:
    Efron and Tibshirani, "An Introduction to the Bootstrap" (1993), percentile intervals;
    cluster (block) resampling of correlated frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from daml.errors import DamlError

N_RESAMPLES = 2000
CONFIDENCE = 0.95
RANDOM_SEED = 0


class WeightedAuc:
    """ROC AUC of fixed scores and labels under per-frame weights, in O(frames) per call.

    Arguments:
        labels: 0 real / 1 fake per frame.
        probs: score per frame (higher: more likely fake).
    """

    def __init__(self, labels: np.ndarray, probs: np.ndarray):
        labels = np.asarray(labels, dtype=int)
        _, self.group = np.unique(np.asarray(probs, dtype=float), return_inverse=True)
        self.groups = int(self.group.max()) + 1 if len(self.group) else 0
        self.fake = labels == 1

    def __call__(self, weights: np.ndarray) -> float:
        fake_w = np.bincount(self.group, weights * self.fake, self.groups)
        real_w = np.bincount(self.group, weights * ~self.fake, self.groups)
        total_fake, total_real = fake_w.sum(), real_w.sum()
        if total_fake == 0 or total_real == 0:
            return float("nan")
        below = np.cumsum(real_w) - real_w  # real weight strictly below each score level
        return float((fake_w * (below + 0.5 * real_w)).sum() / (total_fake * total_real))


@dataclass(frozen=True)
class Cell:
    """One target's predictions for both methods: per seed, probabilities on the same faces.

    Attributes:
        video: video index (0..n_videos-1) of each test face.
        labels: label of each face.
        probs_a, probs_b: per seed, the two methods' probabilities of fake per face.
    """

    video: np.ndarray
    labels: np.ndarray
    probs_a: list[np.ndarray]
    probs_b: list[np.ndarray]

    @property
    def n_videos(self) -> int:
        return int(self.video.max()) + 1

    def strata(self) -> tuple[np.ndarray, np.ndarray]:
        """The video indices of the real and of the fake videos."""
        label_of = np.zeros(self.n_videos, dtype=int)
        label_of[self.video] = self.labels
        return np.flatnonzero(label_of == 0), np.flatnonzero(label_of == 1)


def make_cell(runs_a: Sequence[pd.DataFrame], runs_b: Sequence[pd.DataFrame], what: str) -> Cell:
    """A `Cell` from predictions tables (`key`, `frame`, `label`, `prob`), one per seed.

    Raises:
        DamlError naming `what` when the tables do not hold the same faces in the same order.
    """
    if not runs_a or len(runs_a) != len(runs_b):
        raise DamlError(f"{what}: need the same number (>0) of seeds for both methods")
    first = runs_a[0]
    for run in [*runs_a, *runs_b]:
        if len(run) != len(first) or not (
            (run["key"].to_numpy() == first["key"].to_numpy()).all()
            and (run["frame"].to_numpy() == first["frame"].to_numpy()).all()
        ):
            raise DamlError(
                f"{what}: the predictions of the two methods or seeds are not on the same test "
                "faces; rerun their evaluations from the same face shards"
            )
    _, video = np.unique(first["key"].to_numpy(), return_inverse=True)
    return Cell(
        video,
        first["label"].to_numpy(dtype=int),
        [r["prob"].to_numpy(dtype=float) for r in runs_a],
        [r["prob"].to_numpy(dtype=float) for r in runs_b],
    )


@dataclass(frozen=True)
class Difference:
    """AUC(a) - AUC(b) in AUC units, with its bootstrap interval."""

    value: float
    low: float
    high: float

    @property
    def distinguishable(self) -> bool:
        """True when the interval excludes zero."""
        return bool(self.low > 0 or self.high < 0)


def auc_difference(cells: Sequence[Cell], n_resamples: int = N_RESAMPLES,
                   confidence: float = CONFIDENCE, seed: int = RANDOM_SEED) -> Difference:
    """Mean over cells and seeds of AUC(a) - AUC(b), with a paired video-bootstrap interval.

    Arguments:
        cells: one per target (one for an ordinary table cell, several for Cross AVG).
        n_resamples, confidence, seed: of the bootstrap.

    Returns:
        `Difference` (NaN when some AUC is undefined, e.g. one class only).
    """
    if not cells:
        raise DamlError("auc_difference: no cells to compare")
    scorers = [
        [(WeightedAuc(c.labels, a), WeightedAuc(c.labels, b)) for a, b in zip(c.probs_a, c.probs_b)]
        for c in cells
    ]

    def statistic(*resampled: np.ndarray) -> float:
        total = 0.0
        for i, (cell, pairs) in enumerate(zip(cells, scorers)):
            videos = np.concatenate(resampled[2 * i : 2 * i + 2]).astype(np.int64)
            weights = np.bincount(videos, minlength=cell.n_videos)[cell.video].astype(float)
            total += np.mean([a(weights) - b(weights) for a, b in pairs])
        return total / len(cells)

    samples = tuple(stratum for c in cells for stratum in c.strata())
    observed = statistic(*samples)
    if not np.isfinite(observed):
        return Difference(float("nan"), float("nan"), float("nan"))
    result = stats.bootstrap(
        samples,
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=False,
        paired=False,
        random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Difference(float(observed), float(low), float(high))
