"""Frame- and video-level detection metrics on pooled predictions.

Description:
    All metrics are computed once on the pooled predictions of a whole evaluation set with
    scikit-learn (never averaged over batches). `prob` is the probability of "fake" (label 1).
    - ACC: accuracy at threshold 0.5 (prob >= 0.5 means fake).
    - AUC: area under the ROC curve; AP: average precision (fake is the positive class).
    - EER: the error rate where the false-positive rate equals the false-negative rate,
      linearly interpolated between the two ROC points around the crossing.
    - loss: mean binary cross-entropy (frame level only), probabilities clipped to 1e-7.
    - Video level: one score per video key (mean frame probability), label of its frames.
    When only one class is present AUC, AP and EER are undefined: NaN with a logged warning.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score, roc_curve

log = logging.getLogger(__name__)

# a probability of fake at or above this calls a face or video fake (ACC; `daml detect`)
FAKE_AT = 0.5

EPS = 1e-7


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """EER from the ROC curve (interpolated where FPR crosses FNR = 1 - TPR)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # decreasing along the curve: starts at 1, ends at -1
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0 or i == 0:
        return float(fpr[i])
    # crossing between points i-1 and i: interpolate both rates linearly
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def _ranking_metrics(labels: np.ndarray, probs: np.ndarray, what: str) -> dict:
    if len(np.unique(labels)) < 2:
        log.warning(
            "%s: only one class among %d predictions; AUC, AP and EER are NaN", what, len(labels)
        )
        return {"auc": math.nan, "ap": math.nan, "eer": math.nan}
    return {
        "auc": float(roc_auc_score(labels, probs)),
        "ap": float(average_precision_score(labels, probs)),
        "eer": equal_error_rate(labels, probs),
    }


def frame_metrics(labels, probs) -> dict:
    """ACC, AUC, AP, EER, cross-entropy loss and count over frames.

    Arguments:
        labels: 0 real / 1 fake per frame.
        probs: probability of fake per frame.

    Returns:
        {"acc", "auc", "ap", "eer", "loss", "n"} (NaN where undefined).
    """
    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs, dtype=float)
    if len(labels) == 0:
        log.warning("frame metrics of an empty prediction set are NaN")
        nan = math.nan
        return {"acc": nan, "auc": nan, "ap": nan, "eer": nan, "loss": nan, "n": 0}
    out = {"acc": float(np.mean((probs >= FAKE_AT) == labels))}
    out.update(_ranking_metrics(labels, probs, "frame metrics"))
    out["loss"] = float(log_loss(labels, np.clip(probs, EPS, 1 - EPS), labels=[0, 1]))
    out["n"] = int(len(labels))
    return out


def video_scores(keys, labels, probs) -> pd.DataFrame:
    """One row per video key: `key`, `label`, `prob` (mean frame probability)."""
    frame = pd.DataFrame(
        {
            "key": np.asarray(keys),
            "label": np.asarray(labels, dtype=int),
            "prob": np.asarray(probs, dtype=float),
        }
    )
    videos = frame.groupby("key", sort=True).agg(
        label=("label", "max"), mixed=("label", "min"), prob=("prob", "mean")
    )
    if (videos["label"] != videos["mixed"]).any():
        log.warning(
            "%d video keys mix labels; their label is taken as fake",
            int((videos["label"] != videos["mixed"]).sum()),
        )
    return videos.drop(columns="mixed").reset_index()


def video_metrics(keys, labels, probs) -> dict:
    """ACC, AUC, AP, EER and count over videos (video score = mean frame probability)."""
    videos = video_scores(keys, labels, probs)
    if len(videos) == 0:
        nan = math.nan
        return {"acc": nan, "auc": nan, "ap": nan, "eer": nan, "n": 0}
    labels = videos["label"].to_numpy()
    probs = videos["prob"].to_numpy()
    out = {"acc": float(np.mean((probs >= FAKE_AT) == labels))}
    out.update(_ranking_metrics(labels, probs, "video metrics"))
    out["n"] = int(len(videos))
    return out


def compute_metrics(predictions: pd.DataFrame) -> dict:
    """metrics.json content from a predictions table (`key`, `label`, `prob` columns)."""
    return {
        "frame": frame_metrics(predictions["label"], predictions["prob"]),
        "video": video_metrics(predictions["key"], predictions["label"], predictions["prob"]),
    }
