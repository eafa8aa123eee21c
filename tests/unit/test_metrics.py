"""Metrics against direct scikit-learn / numpy computations."""

import logging
import math

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from daml.metrics import compute_metrics, equal_error_rate, frame_metrics, video_metrics


def test_frame_metrics_match_direct_computation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probs = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    out = frame_metrics(labels, probs)
    assert out["acc"] == np.mean((probs >= 0.5).astype(int) == labels)
    assert math.isclose(out["auc"], roc_auc_score(labels, probs))
    assert math.isclose(out["ap"], average_precision_score(labels, probs))
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    assert math.isclose(out["loss"], -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    assert out["n"] == 200


def test_eer_by_threshold_scan():
    # brute force: for every threshold, FPR and FNR; where they are equal, that is the EER
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.6, 0.8, 0.9])
    rates = []
    for t in np.unique(scores):
        pred = scores >= t
        fpr = np.mean(pred[labels == 0])
        fnr = np.mean(~pred[labels == 1])
        rates.append((fpr, fnr))
    equal = [f for f, n in rates if f == n]
    assert equal and math.isclose(equal_error_rate(labels, scores), equal[0])
    assert equal_error_rate(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert equal_error_rate(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 1.0


def test_single_class_gives_nan_and_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        out = frame_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert math.isnan(out["auc"]) and math.isnan(out["ap"]) and math.isnan(out["eer"])
    assert math.isclose(out["acc"], 2 / 3)
    assert "one class" in caplog.text


def test_video_metrics_use_mean_probability_per_key():
    keys = ["a", "a", "b", "b", "c", "c", "d"]
    labels = [1, 1, 0, 0, 1, 1, 0]
    probs = [0.9, 0.2, 0.6, 0.6, 0.4, 0.5, 0.1]
    out = video_metrics(keys, labels, probs)
    video_probs = np.array([0.55, 0.6, 0.45, 0.1])
    video_labels = np.array([1, 0, 1, 0])
    assert out["n"] == 4
    assert math.isclose(out["acc"], np.mean((video_probs >= 0.5) == video_labels))
    assert math.isclose(out["auc"], roc_auc_score(video_labels, video_probs))


def test_compute_metrics_layout():
    frame = pd.DataFrame({"key": ["a", "b"], "label": [0, 1], "prob": [0.3, 0.8]})
    out = compute_metrics(frame)
    assert set(out["frame"]) == {"acc", "auc", "ap", "eer", "loss", "n"}
    assert set(out["video"]) == {"acc", "auc", "ap", "eer", "n"}
    assert out["frame"]["auc"] == 1.0 and out["video"]["acc"] == 1.0
