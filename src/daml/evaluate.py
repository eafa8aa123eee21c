"""Evaluation of a trained or adapted model on the target's test split.

Description:
    The model runs in eval mode (batch norm with its tracked running statistics, see
    `daml.model`) under `torch.no_grad`, in batches. Each test face gets one row in
    predictions.csv (`key,dataset,technique,video,frame,label,prob`, prob = probability of
    fake); metrics.json holds frame- and video-level metrics computed on the pooled
    predictions (`daml.metrics`, docs/architecture.md "Adaptation and evaluation").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from daml.errors import DamlError
from daml.facedata import describe_split, load_faces, to_input
from daml.io import write_csv, write_json
from daml.metrics import compute_metrics
from daml.model import autocast, configure_threads, load_model, resolve_device, resolve_precision

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ["key", "dataset", "technique", "video", "frame", "label", "prob"]


@dataclass(frozen=True)
class EvaluateSettings:
    """Settings of the evaluate stage (config section `evaluate`).

    Arguments:
        batch_size (int): faces per forward pass.
        device (str): "auto", "cpu", "cuda" or "cuda:N".
        precision (str): "fp32", "bf16" or "auto".
        threads (int): CPU threads for torch (0 = torch default).
    """

    batch_size: int
    device: str
    precision: str
    threads: int


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: torch.Tensor,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Probabilities of fake for uint8 (N,S,S,3) faces; the model is put in eval mode.

    Returns:
        float64 array (N,).
    """
    model.eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = to_input(images[start : start + batch_size].to(device, non_blocking=True))
        with autocast(device, dtype):
            logits = model(batch)
        out.append(torch.sigmoid(logits.float()).cpu())
    if not out:
        return np.zeros(0)
    return torch.cat(out).double().numpy()


def target_techniques(target: dict) -> list[str] | None:
    """The target's fake techniques (None: all of its faceset)."""
    techniques = target.get("techniques")
    return None if techniques is None else list(techniques)


def evaluate_model(
    model_pt: str | Path,
    shards: Sequence[str | Path],
    target: dict,
    out_predictions: str | Path,
    out_metrics: str | Path,
    settings: EvaluateSettings,
    manifest: str | Path | None = None,
) -> dict:
    """Predict every test face of a target and write predictions.csv and metrics.json.

    Arguments:
        model_pt: model.pt from the train or adapt stage (its image size is used).
        shards: the target faceset's face shards.
        target: {"faceset": str, "techniques": [str, ...] or None for all}.
        out_predictions, out_metrics: output paths.
        settings: `EvaluateSettings`.
        manifest: the target dataset's manifest.csv, for the counts of an empty test split.

    Returns:
        the metrics dict written to `out_metrics`.
    """
    configure_threads(settings.threads)
    device = resolve_device(settings.device)
    dtype = resolve_precision(settings.precision, device)
    model, payload = load_model(model_pt, device)
    techniques = target_techniques(target)
    faces = load_faces(shards, int(payload["image_size"]), techniques, ["test"])
    if len(faces) == 0:
        raise DamlError(
            f"target {target.get('faceset')} (techniques {target.get('techniques')}) has no "
            "test faces, so there is nothing to score: "
            + describe_split(shards, manifest, target.get("faceset"), techniques, "test")
        )
    probs = predict(model, faces.images, settings.batch_size, device, dtype)
    predictions = faces.table[PREDICTION_COLUMNS[:-1]].copy()
    predictions["prob"] = probs
    metrics = compute_metrics(predictions)
    write_csv(out_predictions, predictions)
    write_json(out_metrics, metrics)
    log.info(
        "%s on %s: frame AUC %.4f ACC %.4f, video AUC %.4f (%d faces, %d videos)",
        model_pt,
        target.get("faceset"),
        metrics["frame"]["auc"],
        metrics["frame"]["acc"],
        metrics["video"]["auc"],
        metrics["frame"]["n"],
        metrics["video"]["n"],
    )
    return metrics
