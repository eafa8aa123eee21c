"""Frame-level AUC and ACC of fixed predictions under many weightings of the frames at once.

Description:
    A bootstrap resample of test clusters counts every frame as often as its cluster was
    drawn, so each resample is a weight vector over the frames. Both metrics are evaluated
    for a (resamples x frames) weight matrix in O(resamples x frames):
    - AUC: the probability that a random fake frame scores above a random real frame, ties
      counting one half, every frame counted by its weight (unit weights give the
      Mann-Whitney AUC that scikit-learn's roc_auc_score computes);
    - ACC: the weighted share of frames on the right side of 0.5 (prob >= 0.5 is fake, as
      `daml.metrics`).
    A resample without a fake or a real frame has an undefined AUC: NaN.
"""

from __future__ import annotations

import numpy as np

METRICS = ("auc", "acc")
CHUNK = 256  # resamples per block: bounds memory at CHUNK x frames floats


def weighted_metric(metric: str, weights: np.ndarray, labels: np.ndarray,
                    probs: np.ndarray) -> np.ndarray:
    """`metric` ("auc" or "acc") under each row of `weights` (resamples x frames).

    Returns:
        float64 array (resamples,).
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    return resampled_metric(metric, weights, np.arange(weights.shape[1]), labels, probs)


def resampled_metric(metric: str, counts: np.ndarray, units: np.ndarray, labels: np.ndarray,
                     probs: np.ndarray) -> np.ndarray:
    """`metric` when frame i weighs counts[:, units[i]] (resamples x units counts).

    Returns:
        float64 array (resamples,).
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: use one of {METRICS}")
    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs, dtype=float)
    units = np.asarray(units, dtype=np.int64)
    if metric == "acc":
        correct = ((probs >= 0.5) == (labels == 1)).astype(float)
        weights = counts[:, units].astype(float)
        total = weights.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, weights @ correct / total, np.nan)
    return _weighted_auc(counts, units, labels, probs)


def _weighted_auc(counts, units, labels, probs) -> np.ndarray:
    fake, real = labels == 1, labels != 1
    real_order = np.argsort(probs[real], kind="stable")
    real_probs = probs[real][real_order]
    real_units = units[real][real_order]
    fake_units, fake_probs = units[fake], probs[fake]
    # per fake frame: how many real frames score strictly below it, and how many at most as high
    below = np.searchsorted(real_probs, fake_probs, side="left")
    at_most = np.searchsorted(real_probs, fake_probs, side="right")
    out = np.empty(counts.shape[0])
    for first in range(0, counts.shape[0], CHUNK):
        block = counts[first:first + CHUNK].astype(np.float32)  # exact: counts are small ints
        # cumulative real weight, with a leading 0: column k holds the weight of the k lowest
        cumulative = np.zeros((block.shape[0], len(real_probs) + 1), dtype=np.float32)
        np.cumsum(block[:, real_units], axis=1, out=cumulative[:, 1:])
        credit = 0.5 * (cumulative[:, below] + cumulative[:, at_most])  # ties count one half
        fake_w = block[:, fake_units]
        pairs = fake_w.sum(1, dtype=np.float64) * cumulative[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[first:first + CHUNK] = np.where(
                pairs > 0, (fake_w * credit).sum(1, dtype=np.float64) / pairs, np.nan
            )
    return out
