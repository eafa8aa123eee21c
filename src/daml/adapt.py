"""Few-shot fine-tuning of a meta-trained model on the target domain.

Description:
    After meta-training the paper fine-tunes on "a small amount" of labelled target data
    (section 2) with learning rate 1e-4. We take `shots` faces per class from the target's
    train split, spread over as many distinct videos as possible and drawn
    deterministically from `seed` (`daml.tasks.sample_shots`), and fine-tune all weights
    with Adam for `steps` steps, each on all 2*shots faces or on a class-balanced minibatch
    of `batch_size` faces.

    Batch norm (`bn_mode`): "batch" (recommended) runs the fine-tuning passes in train
    mode, as in the inner loop the initialisation was meta-learned for, and lets those
    passes update the running statistics (momentum 0.1), so evaluation normalises with
    statistics moved towards the target domain; "frozen" keeps the running statistics of
    meta-training and normalises the fine-tuning passes with them (eval-mode BN, affine
    parameters still trained). Paper: silent.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from daml.errors import DamlError
from daml.evaluate import target_techniques
from daml.facedata import load_faces, to_input
from daml.io import atomic_path
from daml.meta import loss_fn
from daml.model import autocast, configure_threads, load_model, resolve_device, resolve_precision
from daml.tasks import sample_shots

log = logging.getLogger(__name__)

BN_MODES = ("batch", "frozen")


@dataclass(frozen=True)
class AdaptSettings:
    """Settings of the adapt stage (config section `adapt`).

    Arguments:
        steps (int): fine-tuning steps (Adam).
        lr (float): fine-tuning learning rate (paper: 1e-4).
        batch_size (int): faces per step; 0 or >= 2*shots uses all shots every step.
        bn_mode (str): "batch" or "frozen" (see module docstring).
        device (str): "auto", "cpu", "cuda" or "cuda:N".
        precision (str): "fp32", "bf16" or "auto".
        threads (int): CPU threads for torch (0 = torch default).
    """

    steps: int
    lr: float
    batch_size: int
    bn_mode: str
    device: str
    precision: str
    threads: int


def fine_tune(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: AdaptSettings,
    seed: int,
    device: torch.device,
    dtype: torch.dtype | None,
) -> list[float]:
    """Fine-tune `model` in place on uint8 faces `images` with `labels`; returns the losses."""
    if settings.bn_mode not in BN_MODES:
        raise DamlError(f"adapt.bn_mode={settings.bn_mode!r}: use one of {BN_MODES}")
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(seed)
    fake = torch.nonzero(labels == 1).flatten()
    real = torch.nonzero(labels == 0).flatten()
    full = settings.batch_size <= 0 or settings.batch_size >= len(labels)
    losses = []
    for step in range(settings.steps):
        if full:
            index = torch.arange(len(labels))
        else:
            half = settings.batch_size // 2
            index = torch.cat(
                [
                    fake[torch.randperm(len(fake), generator=generator)[:half]],
                    real[
                        torch.randperm(len(real), generator=generator)[: settings.batch_size - half]
                    ],
                ]
            )
        model.train(settings.bn_mode == "batch")
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            logits = model(to_input(images[index.to(images.device)]))
        loss = loss_fn(logits, labels[index.to(labels.device)])
        if not torch.isfinite(loss):
            raise DamlError(f"non-finite fine-tuning loss at step {step + 1}: lower adapt.lr")
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def adapt_model(
    model_pt: str | Path,
    shards: Sequence[str | Path],
    target: dict,
    shots: int,
    seed: int,
    settings: AdaptSettings,
    out_model: str | Path,
) -> dict:
    """Fine-tune a trained model on `shots` labelled faces per class of the target.

    Arguments:
        model_pt: model.pt of the train stage.
        shards: the target faceset's face shards.
        target: {"faceset": str, "techniques": [str, ...] or None for all}.
        shots: faces per class (k); 0 writes the model unchanged.
        seed: seed of the k-shot draw and of the minibatches.
        settings: `AdaptSettings`.
        out_model: the adapted model.pt (payload of the input plus an `adapt` record).

    Returns:
        the `adapt` record (shots, keys of the chosen faces, losses).
    """
    shots, seed = int(shots), int(seed)  # wildcards may arrive as strings
    configure_threads(settings.threads)
    device = resolve_device(settings.device)
    dtype = resolve_precision(settings.precision, device)
    model, payload = load_model(model_pt, device)
    record = {
        "shots": shots,
        "seed": seed,
        "target": target,
        "settings": dataclasses.asdict(settings),
        "keys": [],
        "losses": [],
    }
    if shots > 0:
        faces = load_faces(shards, int(payload["image_size"]), target_techniques(target), ["train"])
        if len(faces) == 0:
            raise DamlError(
                f"target {target.get('faceset')} has no train-split faces for "
                "few-shot adaptation: use shots 0 for it or check the faces stage"
            )
        chosen = faces.subset(sample_shots(faces.table, shots, seed))
        record["keys"] = [f"{k}#{f}" for k, f in zip(chosen.table["key"], chosen.table["frame"])]
        record["losses"] = fine_tune(
            model, chosen.images.to(device), chosen.labels.to(device), settings, seed, device, dtype
        )
        log.info(
            "fine-tuned on %d faces from %d videos: loss %.4f -> %.4f",
            len(chosen),
            chosen.table["key"].nunique(),
            record["losses"][0] if record["losses"] else np.nan,
            record["losses"][-1] if record["losses"] else np.nan,
        )
    else:
        log.info("shots=0: the model is written unchanged")
    payload = dict(payload)
    payload["state_dict"] = {
        k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
    }
    payload["adapt"] = record
    with atomic_path(out_model) as tmp:
        torch.save(payload, tmp)
    return record
