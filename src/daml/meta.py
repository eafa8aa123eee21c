"""DAML, MAML and ERM steps: DAML is MAML plus one named outer objective.

Description:
    One meta-iteration (paper Algorithm 1): for every task of the batch, adapt the
    meta-parameters theta on the support batch (eq. 2, `adapt`), take the query loss
    L_i at the adapted weights theta'_i, combine the query losses with the outer
    objective (eq. 4 for MAML, eq. 5 for DAML), backpropagate into theta and take an Adam
    step. First order by default, as in the paper: the inner gradient is detached, so
    d theta'_i / d theta = I and the meta-gradient is sum_i w_i grad L_i(theta'_i), with
    w_i = d objective / d L_i. `first_order=False` keeps the graph (create_graph) for the
    exact second-order meta-gradient.

    Fast weights are a dict {name: tensor} evaluated with `torch.func.functional_call`;
    the module is never modified. Tasks run in a plain loop with channels-last inputs and
    weights and (where the hardware has it) bf16 autocast; each task's outer term is
    backpropagated as soon as it is computed, so only one task's graph is alive at a time.
    On a CPU at 84 and 128 px this loop is faster than stacking the tasks along channel
    groups or vmapping over them (benchmarks/README.md, "Meta-iteration");
    benchmarks/bench_meta.py checks it against a learn2learn-style clone loop. On a GPU,
    where the loop is launch-bound, `daml.batched` runs every task in one pass with the
    same meta-gradient (`train.task_batching`; `make_method`'s `task_batching`).

    `make_method` chooses a method's behaviour once per run: a `Method` whose `backward`
    is `meta_backward` with the method's outer objective and inner loop bound, or
    `erm_backward`. Both compute an iteration's gradient without reading anything back to
    the host, so `daml.graphed` can capture them in a CUDA graph; the runners there add
    the optimizer step, the finiteness check and the record.

    ERM shares the data, backbone, optimizer, checkpoint and logging and swaps only the
    backward: one supervised step on the pooled support and query faces of the same
    sampled tasks (the same number of faces per iteration as the meta-step).

References:
    Finn et al. 2017 (MAML); the DAML paper, eqs. 2, 4, 5 and Algorithm 1.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from daml.errors import DamlError

log = logging.getLogger(__name__)


def maml_objective(query_losses: torch.Tensor) -> torch.Tensor:
    """Eq. 4: every task's query loss counts the same."""
    return query_losses.sum()


def daml_objective(query_losses: torch.Tensor) -> torch.Tensor:
    """Eq. 5 as printed: L * sigmoid(L) = L / (1 + exp(-L)), differentiated as a whole.

    Its gradient weights task i by d/dL [L sigmoid(L)] = s + L s (1 - s) with s = sigmoid(L):
    0.5 at L = 0, 1 at L = 1.28, at most 1.10 (L = 2.4), then back towards 1. Hard tasks
    count up to 2.2 times as much as easy ones.
    """
    return (query_losses * torch.sigmoid(query_losses)).sum()


def daml_detached_objective(query_losses: torch.Tensor) -> torch.Tensor:
    """Eq. 5 with sigmoid(L) read as a constant coefficient: the task weight is sigmoid(L).

    The paper's prose calls the sigmoid a coefficient in [0.5, 1) that adjusts each task's
    loss; treating it as a constant (no gradient through it) is that reading.
    """
    return (query_losses * torch.sigmoid(query_losses).detach()).sum()


# Every outer objective is a sum of per-task terms f(L_i): `meta_backward` backpropagates
# each task's term as soon as it is computed, and `task_weights` differentiates f itself.
DAML_OBJECTIVES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "literal": daml_objective,
    "detached": daml_detached_objective,
}
Objective = Callable[[torch.Tensor], torch.Tensor]


def outer_objective(method: str, daml_weight: str = "literal") -> Objective | None:
    """The outer objective of `method` (None for ERM, which has no outer loop).

    Arguments:
        method: "daml", "maml" or "erm".
        daml_weight: "literal" (`daml_objective`) or "detached" (`daml_detached_objective`);
            only read for DAML.
    """
    if method == "erm":
        return None
    if method == "maml":
        return maml_objective
    if method == "daml":
        if daml_weight not in DAML_OBJECTIVES:
            raise DamlError(
                f"train.daml_weight={daml_weight!r}: use one of {sorted(DAML_OBJECTIVES)}"
            )
        return DAML_OBJECTIVES[daml_weight]
    raise DamlError(f"method={method!r}: use one of daml, maml, erm (config methods)")


def task_weights(objective: Objective | None, query_losses: torch.Tensor) -> torch.Tensor:
    """The weight each task's query gradient gets: d objective / d L_i, by autograd.

    This is the number history.csv records. For MAML it is 1; for DAML it is
    s + L s (1 - s) (literal) or s (detached), s = sigmoid(L); ERM (`objective` None): 1.
    """
    losses = query_losses.detach().to("cpu", torch.float64)
    if objective is None:
        return torch.ones_like(losses)
    losses.requires_grad_(True)
    (weights,) = torch.autograd.grad(objective(losses), losses)
    return weights


LOSS_REDUCTIONS = ("mean", "sum")


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy of fake-logits against labels (1 fake), at least in fp32.

    Arguments:
        reduction: "mean" over the batch (default) or "sum", eq. 3's L (`train.loss_reduction`).
    """
    if logits.dtype in (torch.bfloat16, torch.float16):
        logits = logits.float()
    losses = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype),
                                                reduction="none")
    # over the last dim: one batch's loss, or each task's from (T, B) logits (`daml.batched`)
    return losses.mean(-1) if reduction == "mean" else losses.sum(-1)


def sgd_step(fast: dict[str, torch.Tensor], loss: torch.Tensor, inner_lr: float,
             first_order: bool) -> dict[str, torch.Tensor]:
    """Eq. 2's gradient step on fast weights; second order keeps the graph through it."""
    grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
    return {
        name: value - inner_lr * (grad.detach() if first_order else grad)
        for (name, value), grad in zip(fast.items(), grads)
    }


@dataclass
class TaskData:
    """Input tensors of one task: support/query images (B,3,S,S) and labels (B,)."""

    name: str
    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor


@dataclass
class StepRecord:
    """What one iteration logs: task names, query losses, weights and the objective."""

    tasks: list[str]
    query_losses: list[float]
    weights: list[float]
    meta_loss: float


def adapt(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    inner_lr: float,
    steps: int,
    first_order: bool = True,
    scratch_buffers: dict[str, torch.Tensor] | None = None,
    reduction: str = "mean",
    record: list[float] | None = None,
) -> dict[str, torch.Tensor]:
    """Eq. 2 applied `steps` times: theta' = theta - alpha * grad L_support(theta).

    Arguments:
        model: the module whose forward is evaluated with `functional_call`.
        params: fast weights to start from (the meta-parameters theta).
        images, labels: the support batch.
        inner_lr (float): alpha.
        steps (int): inner gradient steps.
        first_order (bool, default True): detach the inner gradient (paper); False keeps
            the graph (second-order MAML).
        scratch_buffers: batch-norm buffers for passes at adapted weights (their updates
            are discarded); the first pass, at theta, uses the module's own buffers, so
            running statistics follow the meta-parameters (see `daml.models.conv4`).
        reduction: of the support loss over the batch (`loss_fn`).
        record: when given, each step's support loss is appended to it (a host read, so
            never inside a captured graph).

    Returns:
        dict of adapted fast weights theta'.
    """
    fast = dict(params)
    for step in range(steps):
        state = fast if step == 0 or scratch_buffers is None else {**fast, **scratch_buffers}
        loss = loss_fn(functional_call(model, state, (images,)), labels, reduction)
        if record is not None:
            record.append(float(loss.detach()))
        fast = sgd_step(fast, loss, inner_lr, first_order)
    return fast


def meta_backward(
    model: nn.Module,
    tasks: Sequence[TaskData],
    autocast=None,
    *,
    objective: Objective,
    inner_lr: float,
    inner_steps: int,
    first_order: bool,
    reduction: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accumulate one batch's DAML or MAML meta-gradient into the parameters' `.grad`.

    Algorithm 1, lines 3-9, without the optimizer step and without a single host-device
    synchronisation, so that `daml.graphed` can capture it in a CUDA graph.

    Arguments:
        model: Conv-4 in train mode (its `.grad` are added to; zero them before).
        tasks: support and query batches of each sampled task.
        autocast: a context manager factory for mixed precision (None: fp32).
        objective: the outer objective (`outer_objective`), a sum of per-task terms.
        inner_lr, inner_steps, first_order: the inner loop (`adapt`).
        reduction: of each batch's loss, support and query (`loss_fn`): eq. 3's sum or
            the mean.

    Returns:
        (query losses (T,), meta-loss ()) as detached tensors on the model's device.
    """
    params = dict(model.named_parameters())
    scratch = {name: buffer.clone() for name, buffer in model.named_buffers()}
    losses, terms = [], []
    for task in tasks:
        with autocast() if autocast else contextlib.nullcontext():
            fast = adapt(
                model,
                params,
                task.support,
                task.support_labels,
                inner_lr,
                inner_steps,
                first_order,
                scratch,
                reduction,
            )
            logits = functional_call(model, {**fast, **scratch}, (task.query,))
        query_loss = loss_fn(logits, task.query_labels, reduction).reshape(1)
        # both objectives are sums of per-task terms, so each task's term can be
        # backpropagated at once: its graph is freed before the next task is built
        term = objective(query_loss)
        term.backward()
        losses.append(query_loss.detach())
        terms.append(term.detach())
    return torch.cat(losses), torch.stack(terms).sum()


def erm_backward(
    model: nn.Module, tasks: Sequence[TaskData], autocast=None, *, reduction: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the supervised loss on the pooled support and query faces of all tasks.

    Returns what `meta_backward` returns (the one loss stands for every task). Batch norm
    uses the pooled batch and updates its running statistics as usual.
    """
    images = torch.cat([t for task in tasks for t in (task.support, task.query)])
    labels = torch.cat([t for task in tasks for t in (task.support_labels, task.query_labels)])
    with autocast() if autocast else contextlib.nullcontext():
        loss = loss_fn(model(images), labels, reduction)
    loss.backward()
    return loss.detach().reshape(1), loss.detach()


Backward = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Method:
    """One training method, chosen once per run: how a batch of tasks becomes a gradient.

    Attributes:
        name: "daml", "maml" or "erm".
        objective: the outer objective (eq. 4 or 5); None for ERM, which has none.
        backward: (model, tasks, autocast) -> (query losses, meta-loss), accumulating the
            gradient into `.grad` without a host sync: `meta_backward` with the objective and
            the inner loop bound, or `erm_backward`.

    Example:
        >>> method = make_method("daml", "literal", inner_lr=0.01, inner_steps=1)
        >>> losses, meta_loss = method.backward(model, tasks)
    """

    name: str
    objective: Objective | None
    backward: Backward

    def task_names(self, tasks: Sequence) -> list[str]:
        """The names a step's losses are logged under (ERM has one pooled loss)."""
        return ["pooled"] if self.objective is None else [task.name for task in tasks]

    def record(self, names: Sequence[str], losses: torch.Tensor, meta_loss) -> StepRecord:
        """The logged form of one iteration (CPU values; reading them synchronises)."""
        losses = losses.detach().float().cpu()
        weights = task_weights(self.objective, losses)
        return StepRecord(list(names), losses.tolist(), weights.tolist(), float(meta_loss))


def make_method(
    name: str,
    daml_weight: str = "literal",
    inner_lr: float = 0.01,
    inner_steps: int = 1,
    first_order: bool = True,
    loss_reduction: str = "mean",
    task_batching: str = "loop",
) -> Method:
    """The `Method` of a config: its outer objective and, for DAML and MAML, its inner loop.

    `loss_reduction` ("mean" or "sum", `loss_fn`) applies to every training loss of the
    method: support and query losses, or ERM's pooled loss. `task_batching` is how DAML and
    MAML run the tasks: "loop" (`meta_backward`) or one batched pass, "grouped" or "vmap"
    (`daml.batched.batched_meta_backward`; `daml.batched.choose` resolves "auto" first).
    ERM has one pooled pass and ignores it.
    """
    if loss_reduction not in LOSS_REDUCTIONS:
        raise DamlError(f"train.loss_reduction={loss_reduction!r}: use one of {LOSS_REDUCTIONS}")
    objective = outer_objective(name, daml_weight)
    if objective is None:
        return Method(name, None, functools.partial(erm_backward, reduction=loss_reduction))
    inner = dict(
        objective=objective,
        inner_lr=inner_lr,
        inner_steps=inner_steps,
        first_order=first_order,
        reduction=loss_reduction,
    )
    if task_batching == "loop":
        return Method(name, objective, functools.partial(meta_backward, **inner))
    from daml import batched  # it builds on this module's loss and inner step

    if task_batching not in batched.BATCHINGS:
        raise DamlError(
            f"train.task_batching={task_batching!r}: use loop or one of "
            f"{sorted(batched.BATCHINGS)}"
        )
    backward = functools.partial(batched.batched_meta_backward, batching=task_batching, **inner)
    return Method(name, objective, backward)


def step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    tasks: Sequence[TaskData],
    method: Method,
    iteration: int,
    autocast=None,
) -> StepRecord:
    """One training iteration, eagerly (Algorithm 1, lines 3-10): gradient, then Adam step.

    A non-finite query loss raises `DamlError` before the optimizer step, so the weights
    stay finite.
    """
    optimizer.zero_grad(set_to_none=True)
    losses, meta_loss = method.backward(model, tasks, autocast)
    names = method.task_names(tasks)
    check_finite(losses, names, iteration)
    optimizer.step()
    return method.record(names, losses, meta_loss)


def check_finite(losses: torch.Tensor, names: Sequence[str], iteration: int) -> None:
    """Stop with the iteration and the first task whose loss is NaN or infinite."""
    bad = ~torch.isfinite(losses.detach())
    if bad.any():
        task = names[int(bad.nonzero()[0, 0])]
        raise DamlError(
            f"non-finite loss at iteration {iteration} in task {task!r}; training stopped and "
            "no model written: lower train.inner_lr / train.meta_lr or check the face shards"
        )
