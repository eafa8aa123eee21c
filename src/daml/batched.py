"""DAML and MAML with every task of a meta-batch in one batched pass (`train.task_batching`).

Description:
    `daml.meta.meta_backward` runs the tasks one after another: per task a support pass at
    theta, its backward (the inner gradient), a query pass at theta'_i and its backward. On
    a GPU, Conv-4's kernels are so small that this loop is launch-bound (benchmarks/README.md,
    GPU). `batched_meta_backward` computes the same meta-gradient with the tasks as a leading
    dimension: one support pass for all tasks, one inner gradient, one query pass, one
    backward, each kernel T times larger and T times fewer of them. It reads nothing back to
    the host, so `daml.graphed.GraphedRunner` captures it as it captures the loop.

    How the tasks are stacked (`Batching`):
    - `grouped` (Conv-4 only, `daml.models.conv4.grouped_forward`): the tasks' images side by
      side along the channels, (B, T*3, S, S) channels-last, every convolution a grouped one
      with T groups and every batch norm over T*C channels, so no tensor is ever re-laid out
      between layers;
    - `vmap`: `torch.func.vmap` over `torch.func.functional_call`, which runs any module whose
      layers vmap supports (Conv-4, timm's BatchNormAct2d networks), at the cost of the
      layout copies vmap's batching rules make around pooling and batch norm.

    Theta is expanded to one copy per task (a view), so the gradient of the summed support
    losses with respect to that copy is each task's own inner gradient (the tasks share no
    weights inside the pass), and the outer backward sums the tasks' query gradients into
    theta's `.grad` through the expansion, weighted by d objective / d L_i as in the loop.

    Batch norm keeps the loop's policy (`daml.models.conv4`): every pass normalises with its
    own task's batch statistics, and the running statistics move once per task with the
    support batch at theta. The support pass at theta writes each task's momentum-scaled
    statistics into zero-filled per-task buffers (`momentum * statistic`, the kernel's own
    product); `fold_statistics` then applies the T updates to the model's buffers in task
    order, `r <- (1 - momentum) r + momentum * statistic_i`, which is the loop's arithmetic.
    Passes at adapted weights get no running buffers at all (the loop's scratch buffers,
    whose updates it discards).

    Which one runs is chosen once per run by `choose`: `auto` is `grouped` for Conv-4 on a
    CUDA device and the loop everywhere else. On a CPU the loop is faster at the paper's
    84 and 128 px (grouped is 1.1-1.5x slower there, vmap 6.5-9x); grouped is 10-25% faster
    at the default config's 32 px, but `auto` keeps the loop on a CPU so that its results
    stay those of earlier runs, bit for bit (benchmarks/README.md, "Meta-iteration").
    tests/unit/test_meta.py checks both batchings
    against the loop in float64: every parameter's meta-gradient, the per-task losses and
    the running statistics.

References:
    PyTorch docs, torch.func.vmap and torch.func.functional_call ("Patching Batch Norm");
    Finn et al. 2017 (MAML); the DAML paper, eqs. 2, 4, 5.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from daml.errors import DamlError
from daml.meta import loss_fn, sgd_step
from daml.models.conv4 import Conv4, grouped_forward

TASK_BATCHING = ("auto", "loop", "grouped", "vmap")
STATISTICS = ("running_mean", "running_var")

# (model, params with a leading task dim, statistic sinks or None, stacked images) -> (T, B)
Forward = Callable[[nn.Module, dict, dict | None, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Batching:
    """One way of running T tasks as one pass.

    Attributes:
        name: "grouped" or "vmap".
        stack: the tasks' image batches [(B,3,S,S)] -> the pass's input.
        forward: `Forward`, logits (T, B).
    """

    name: str
    stack: Callable[[list[torch.Tensor]], torch.Tensor]
    forward: Forward


def vmap_forward(model: nn.Module, params: dict, sinks: dict | None,
                 images: torch.Tensor) -> torch.Tensor:
    """`functional_call` of `model` vmapped over the leading task dim of params and images.

    Batch norms write into `sinks` (per-task buffers) or, when it is None, get no running
    buffers and update nothing; every other buffer is the module's own, shared by the tasks.
    """
    shared = _no_statistics(model) if sinks is None else {}

    def one_task(task_params, task_sinks, task_images):
        return functional_call(model, {**task_params, **task_sinks, **shared}, (task_images,))

    return vmap(one_task)(params, sinks or {}, images)


def _grouped(model, params, sinks, images):
    # the tasks' images lie side by side along the channels
    return grouped_forward(model, params, sinks, images,
                           images.shape[1] // model.features[0].in_channels)


BATCHINGS = {
    "grouped": Batching("grouped", lambda images: torch.cat(images, dim=1), _grouped),
    "vmap": Batching("vmap", torch.stack, vmap_forward),
}


def choose(setting: str, model: nn.Module, device: torch.device) -> str:
    """`train.task_batching` made real for this backbone and device: loop, grouped or vmap.

    `auto` is `grouped` for Conv-4 on a CUDA device (a launch-bound loop of small kernels
    there) and `loop` elsewhere. Raises `DamlError` for a batching the model cannot run.
    """
    if setting not in TASK_BATCHING:
        raise DamlError(f"train.task_batching={setting!r}: use one of {list(TASK_BATCHING)}")
    if setting == "auto":
        setting = "grouped" if device.type == "cuda" and isinstance(model, Conv4) else "loop"
    if setting == "grouped" and not isinstance(model, Conv4):
        raise DamlError(
            f"train.task_batching=grouped runs Conv-4 only, not {type(model).__name__}: "
            "use vmap or loop"
        )
    if setting != "loop":
        for name, norm in batch_norms(model):
            if norm.momentum is None:
                raise DamlError(
                    f"train.task_batching={setting}: batch norm {name} has momentum None "
                    "(a cumulative average), which the batched pass does not fold: use loop"
                )
    return setting


def batch_norms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """The batch norms whose running statistics a training pass updates."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        and module.track_running_stats
        and module.running_mean is not None
    ]


def _no_statistics(model: nn.Module) -> dict[str, None]:
    """Buffers that make every batch norm normalise with batch statistics and update nothing."""
    return {
        f"{name}.{buffer}": None
        for name, _ in batch_norms(model)
        for buffer in (*STATISTICS, "num_batches_tracked")
    }


def statistic_sinks(model: nn.Module, tasks: int) -> dict[str, torch.Tensor]:
    """Zero-filled per-task running buffers (T, C) for the support pass at theta.

    A batch norm in train mode writes (1 - momentum) * 0 + momentum * statistic into them,
    so each row holds exactly the term the loop adds for that task. The count buffers only
    give vmap's batch norms something of theirs to increment; `fold_statistics` counts.
    """
    sinks = {}
    for name, norm in batch_norms(model):
        for buffer in STATISTICS:
            value = getattr(norm, buffer)
            sinks[f"{name}.{buffer}"] = value.new_zeros((tasks, *value.shape))
        if norm.num_batches_tracked is not None:
            counts = norm.num_batches_tracked
            sinks[f"{name}.num_batches_tracked"] = counts.new_zeros((tasks, *counts.shape))
    return sinks


@torch.no_grad()
def fold_statistics(model: nn.Module, sinks: dict[str, torch.Tensor], tasks: int) -> None:
    """Apply each task's running-statistics update to the model's buffers, in task order."""
    for name, norm in batch_norms(model):
        keep = 1.0 - norm.momentum
        for buffer in STATISTICS:
            running, terms = getattr(norm, buffer), sinks[f"{name}.{buffer}"]
            for task in range(tasks):
                running.mul_(keep).add_(terms[task])
        if norm.num_batches_tracked is not None:
            norm.num_batches_tracked.add_(tasks)


def adapt_tasks(
    model: nn.Module,
    batching: Batching,
    params: dict[str, torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    inner_lr: float,
    steps: int,
    first_order: bool,
    sinks: dict[str, torch.Tensor] | None,
    reduction: str = "mean",
) -> dict[str, torch.Tensor]:
    """`daml.meta.adapt` for every task at once: params and result have a task dim.

    The first step's pass writes the running statistics into `sinks`; later ones update
    nothing. The summed support losses give each task its own gradient, since task i's
    loss depends on task i's weights only.
    """
    fast = dict(params)
    for step in range(steps):
        logits = batching.forward(model, fast, sinks if step == 0 else None, images)
        fast = sgd_step(fast, loss_fn(logits, labels, reduction).sum(), inner_lr, first_order)
    return fast


def batched_meta_backward(
    model: nn.Module,
    tasks: Sequence,
    autocast=None,
    *,
    objective,
    inner_lr: float,
    inner_steps: int,
    first_order: bool,
    reduction: str = "mean",
    batching: str = "grouped",
) -> tuple[torch.Tensor, torch.Tensor]:
    """`daml.meta.meta_backward` with the tasks in one pass: same arguments and result.

    Arguments:
        batching: "grouped" or "vmap" (`BATCHINGS`); see `choose`.

    Every task must have the same support and query sizes (the sampler's are settings).
    """
    if not model.training:
        raise ValueError("the batched meta-pass runs batch norm in train mode: call model.train()")
    way = BATCHINGS[batching]
    count = len(tasks)
    support = way.stack([task.support for task in tasks])
    query = way.stack([task.query for task in tasks])
    support_labels = torch.stack([task.support_labels for task in tasks])
    query_labels = torch.stack([task.query_labels for task in tasks])
    # one view of theta per task: its gradient is that task's, and backward sums them
    theta = {name: p.expand(count, *p.shape) for name, p in model.named_parameters()}
    sinks = statistic_sinks(model, count)
    with autocast() if autocast else contextlib.nullcontext():
        fast = adapt_tasks(model, way, theta, support, support_labels, inner_lr, inner_steps,
                           first_order, sinks, reduction)
        logits = way.forward(model, fast, None, query)
    losses = loss_fn(logits, query_labels, reduction)
    meta_loss = objective(losses)  # a sum of per-task terms, as the loop's
    meta_loss.backward()
    if inner_steps > 0:  # the loop's running statistics move in its first inner step
        fold_statistics(model, sinks, count)
    return losses.detach(), meta_loss.detach()
