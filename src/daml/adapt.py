"""Meta-test: few-shot fine-tuning of a trained model on the target domain.

Description:
    After meta-training the paper fine-tunes on the target task's training set with learning
    rate 1e-4 (section 3.1.3) to obtain the task-specific model theta_d (section 2.2). Every
    table row is scored on theta_d, for DAML, MAML and ERM alike, and model selection during
    training uses the same rule (`daml.train`):

    - Shots: `shots` faces per class from the target's train split, drawn deterministically
      from `seed` and spread over as many videos as possible (`daml.tasks.sample_shots`),
      from a pool that leaves out every video showing an identity (or, under the
      `footage` leak rule, made of a real clip) of the videos the model is then scored on
      (`daml.tasks.leak_free`).
    - Episodes: the evaluate stage repeats the draw `episodes` times (`episode_seed`) and
      reports the mean, since which few faces were drawn moves few-shot scores by itself.
    - Rule (`rule`): "finetune" is the paper's meta-test, below; "inner" adapts as
      meta-training's inner loop does (eq. 2: `InnerLoop`, the trained model's own
      `train.inner_lr`, `inner_steps` and loss reduction, plain gradient steps in train-mode
      batch norm with the running statistics updated by the pass at theta only), which is
      what MAML's and DAML's theta were optimised to be good after.
    - Fine-tuning: Adam at `lr` on all weights for `steps` steps, each on all 2*shots faces
      or on a class-balanced minibatch of `batch_size` faces.
    - Batch norm of "finetune" (`bn_mode`; chosen on validation data only, benchmarks/README.md,
      "Meta-test"):
      "source" keeps the running statistics of training and normalises the fine-tuning
      passes with them (eval-mode batch norm; the affine parameters are still trained);
      "shots" re-estimates the running statistics once on the shots (their plain mean
      and variance), then fine-tunes in eval mode with them; "batch" fine-tunes in train mode,
      as the inner loop does, so every step moves the running statistics towards the shots
      (momentum 0.1: after 20 steps the source statistics keep a weight of 0.9^20 = 0.12).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from torch.func import functional_call

from daml import meta
from daml.errors import DamlError
from daml.facedata import Faces, to_input
from daml.meta import loss_fn
from daml.runtime import autocast
from daml.tasks import leak_free, sample_shots

log = logging.getLogger(__name__)

RULES = ("finetune", "inner")
Seed = int | tuple[int, ...]


@dataclass(frozen=True)
class AdaptSettings:
    """Settings of the meta-test fine-tuning (config section `adapt`).

    Arguments:
        shots (int): faces per class for table rows that name no `shots`, and for model
            selection during training.
        episodes (int): independent shot draws per table row; its score is their mean.
            Model selection uses one draw.
        rule (str): "finetune" (Adam, `steps`, `lr`, `bn_mode`) or "inner" (the trained
            model's inner loop, `InnerLoop`; `steps`, `lr` and `bn_mode` are not read).
        steps (int): fine-tuning steps (Adam).
        lr (float): fine-tuning learning rate (paper: 1e-4).
        batch_size (int): faces per step; 0 or >= 2*shots uses all shots every step.
        bn_mode (str): "source", "shots" or "batch" (see the module docstring).
        device (str): "auto", "cpu", "cuda" or "cuda:N".
        precision (str): "fp32", "bf16" or "auto".
        threads (int): CPU threads for torch (0 = torch default).
    """

    shots: int
    episodes: int
    rule: str
    steps: int
    lr: float
    batch_size: int
    bn_mode: str
    device: str
    precision: str
    threads: int


@dataclass(frozen=True)
class InnerLoop:
    """Meta-training's inner loop (eq. 2) as the `inner` meta-test rule applies it.

    Arguments:
        lr (float): alpha (`train.inner_lr`).
        steps (int): gradient steps (`train.inner_steps`).
        reduction (str): of the support loss (`train.loss_reduction`).
    """

    lr: float
    steps: int
    reduction: str

    @classmethod
    def of(cls, train_settings: dict) -> "InnerLoop":
        """The inner loop a model was trained with (its model.pt `settings`)."""
        return cls(float(train_settings["inner_lr"]), int(train_settings["inner_steps"]),
                   str(train_settings.get("loss_reduction", "mean")))


def episode_seed(seed: int, episode: int) -> tuple[int, int]:
    """The seed of episode `episode` of a model seed's shot draws (numpy seed sequence)."""
    return (int(seed), int(episode))


def _int_seed(seed: Seed) -> int:
    return int(np.random.SeedSequence(seed).generate_state(1)[0])


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def estimate_bn_statistics(model: nn.Module, inputs: torch.Tensor, device, dtype) -> None:
    """Replace every batch norm's running statistics by those of `inputs` (one pass)."""
    norms = _batch_norms(model)
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch gives exactly its statistics
    model.train()
    with autocast(device, dtype):
        model(inputs)
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    model.eval()


def fine_tune(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: AdaptSettings,
    seed: Seed,
    device: torch.device,
    dtype: torch.dtype | None,
    inner: InnerLoop | None = None,
) -> list[float]:
    """Adapt `model` in place on uint8 faces `images` with `labels` by the meta-test rule.

    Arguments:
        settings: the rule (`AdaptSettings`).
        seed: seed of the minibatch draws (an int or a seed sequence, `episode_seed`).
        inner: the model's inner loop; needed by the "inner" rule.

    Returns:
        the training loss of every step. The model is left in eval mode, ready to be scored.
    """
    if settings.rule == "inner":
        if inner is None:
            raise DamlError("adapt.rule=inner needs the trained model's inner loop (train settings)")
        return inner_adapt(model, images, labels, inner, device, dtype)
    if settings.rule != "finetune":
        raise DamlError(f"adapt.rule={settings.rule!r}: use one of {RULES}")
    if settings.bn_mode == "shots":
        estimate_bn_statistics(model, to_input(images), device, dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(_int_seed(seed))
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


def inner_adapt(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    inner: InnerLoop,
    device: torch.device,
    dtype: torch.dtype | None,
) -> list[float]:
    """The "inner" rule: `daml.meta.adapt` on the shots, its result written into `model`.

    Batch norm as in meta-training: train mode, the pass at theta updating the running
    statistics, later passes on scratch copies. Returns the support loss before each step.
    """
    model.train()
    params = dict(model.named_parameters())
    scratch = {name: buffer.clone() for name, buffer in model.named_buffers()}
    losses: list[float] = []
    with autocast(device, dtype):
        fast = meta.adapt(model, params, to_input(images), labels, inner.lr, inner.steps,
                          True, scratch, inner.reduction, losses)
    with torch.no_grad():
        for name, value in params.items():
            value.copy_(fast[name])
    model.eval()
    return losses


def adapted_copy(
    model: nn.Module,
    shots: Faces,
    settings: AdaptSettings,
    seed: Seed,
    device: torch.device,
    dtype: torch.dtype | None,
    inner: InnerLoop | None = None,
) -> tuple[nn.Module, list[float]]:
    """theta_d: an adapted copy of `model` (left untouched) and the adaptation losses."""
    adapted = copy.deepcopy(model)
    losses = fine_tune(
        adapted, shots.images.to(device), shots.labels.to(device), settings, seed, device, dtype,
        inner,
    )
    return adapted, losses


def choose_shots(
    train: pd.DataFrame,
    held_out: pd.DataFrame,
    shots: int,
    seed: Seed,
    what: str,
    explain: Callable[[], str] | None = None,
    rule: str = "identity",
) -> np.ndarray:
    """Positions (into `train`) of `shots` faces per class from the leak-free pool.

    Arguments:
        train: face table of the candidate faces (the train split).
        held_out: face table of what the adapted model is scored on.
        shots: faces per class.
        seed: seed of the draw (an int, or a seed sequence such as `episode_seed`).
        what: the target or source, for messages.
        explain: called only when the pool is short; its text (what became of the split's
            videos, `daml.facedata.describe_split`) ends the message.
        rule: what a shot may not share with a scored video (`daml.tasks.leak_free`).

    Raises:
        DamlError with the pool's counts when a class has fewer than `shots` faces.
    """
    pool = leak_free(train, held_out, rule)
    excluded = train.loc[~pool, "key"].nunique()
    if excluded:
        log.info(
            "%s: %d train videos share %s with the %d scored videos and are not used as shots",
            what,
            excluded,
            "an identity" if rule == "identity" else "footage",
            held_out["key"].nunique(),
        )
    candidates = np.flatnonzero(pool)
    table = train.iloc[candidates]
    for label, name in ((1, "fake"), (0, "real")):
        have = int((table["label"] == label).sum())
        if have < shots:
            total = int((train["label"] == label).sum())
            raise DamlError(
                f"{what}: {have} {name} faces ({table.loc[table.label == label, 'key'].nunique()} "
                f"videos) in the train split can be shots, fewer than shots={shots}: the "
                f"split holds {total} {name} faces, and {excluded} train videos are left out "
                f"because they share {'an identity' if rule == 'identity' else 'footage'} "
                "with the scored videos (leak_rule). Lower the row's shots (or adapt.shots), "
                "check the faces stage output for this split, or, where the dataset's test "
                "split shares its people with train, set the target's leak_rule: footage"
                + (f". Train split: {explain()}" if explain else "")
            )
    return candidates[sample_shots(table, shots, seed)]
