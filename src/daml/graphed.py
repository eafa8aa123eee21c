"""Training-step runners: the eager step, and the whole iteration replayed as a CUDA graph.

Description:
    `train_model` drives one of two runners with the same interface: `step(batch,
    iteration, lr)` takes one sampled meta-batch (`daml.tasks.TaskBatch` index tensors)
    and updates the model; `drain()` returns the `StepRecord`s of the steps since the
    last drain, in order.

    `EagerRunner` gathers the faces and runs `daml.meta.step` (the method's backward, the
    optimizer step, the record) at once; a
    non-finite loss stops before the optimizer step. It runs everywhere.

    `GraphedRunner` (CUDA only) exists because a Conv-4 meta-iteration on a GPU is
    launch-bound: four tasks of support and query passes, forward and backward, are
    several hundred small kernels, each launched from Python
    (benchmarks/bench_gpu.py measures both). It captures one whole iteration once
    (gathering the support and query faces by index from the images held on the GPU,
    the method's backward, the Adam step) and replays it. The backward is whatever the
    method holds: the per-task loop of `daml.meta`, or all tasks as one batched pass
    (`daml.batched`, `train.task_batching`; `auto` picks it for Conv-4 on a GPU), which
    makes the replayed graph T times fewer and T times larger kernels. Per iteration the host
    only draws the task indices with the same sampler and random stream as the eager
    path, copies them through a ring of pinned buffers and launches the replay; it never
    waits for the device. The per-task losses stay on the GPU until `drain`, which reads
    them in one transfer and stops on a non-finite loss with its iteration and task, as
    the eager path does; by then the weights may hold NaN, but the training loop drains
    before every validation and checkpoint, so no model or checkpoint is written from them.

    What capture needs, and how it is met:
    - fixed shapes: tasks per batch, support and query sizes are settings;
    - fixed memory: the images, index and label buffers live as long as the runner;
      parameters and Adam's state are updated in place (`capturable=True`), and a
      checkpoint is loaded before the runner is built;
    - the learning rate is read by the graph from a device tensor, refilled from the
      scheduler's float before a replay when it changed (the scheduler itself keeps
      floats, so its checkpoints are the eager path's);
    - autocast runs with its weight cache off (a cached cast would be a capture-time tensor);
    - the first `warmup` iterations run eagerly on a side stream, as the PyTorch CUDA-graph
      notes ask, so cuDNN and cuBLAS pick their kernels before capture.

References:
    PyTorch docs, "CUDA Graphs" (whole-network capture, capturable optimizers).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch
from torch import nn

from daml import meta
from daml.facedata import to_input
from daml.tasks import TaskBatch

log = logging.getLogger(__name__)

# pinned index buffers in flight; the host blocks only when it is this far ahead
RING = 4


def task_inputs(batch: Sequence[TaskBatch], images: torch.Tensor) -> list[meta.TaskData]:
    """Gather one meta-batch's faces from `images` (on their device) as network inputs."""
    device = images.device
    return [
        meta.TaskData(
            b.name,
            to_input(images[b.support.to(device)]),
            b.support_labels.to(device),
            to_input(images[b.query.to(device)]),
            b.query_labels.to(device),
        )
        for b in batch
    ]


class EagerRunner:
    """One training step at a time, in plain PyTorch, with its record at once.

    Arguments:
        model: Conv-4 in train mode.
        optimizer: the meta-optimizer (Adam).
        method: `daml.meta.Method` (its `backward` gives the gradient).
        images: uint8 (N,S,S,3) faces the batches index into.
        autocast: a context manager factory for mixed precision (None: fp32).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        method: meta.Method,
        images: torch.Tensor,
        autocast: Callable | None = None,
    ):
        self.model, self.optimizer, self.method, self.images = model, optimizer, method, images
        self.autocast = autocast
        self._records: list[tuple[int, float, meta.StepRecord]] = []

    def step(self, batch: Sequence[TaskBatch], iteration: int, lr: float) -> None:
        tasks = task_inputs(batch, self.images)
        record = meta.step(self.model, self.optimizer, tasks, self.method, iteration, self.autocast)
        self._records.append((iteration, lr, record))

    def drain(self) -> list[tuple[int, float, meta.StepRecord]]:
        """(iteration, learning rate, record) of every step since the last drain."""
        records, self._records = self._records, []
        return records


class GraphedRunner:
    """The whole training iteration captured once as a CUDA graph and replayed.

    Arguments:
        model: Conv-4 on a CUDA device, in train mode.
        optimizer: Adam built with `capturable=True`.
        method: `daml.meta.Method` (its `backward` is what the graph captures).
        images: uint8 (N,S,S,3) faces on the model's device; indexed by the batches.
        tasks_per_batch, support_size, query_size: the batch shape every step must have.
        dtype: autocast dtype (None: fp32).
        warmup (int, default 3): eager iterations before capture.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        method: meta.Method,
        images: torch.Tensor,
        tasks_per_batch: int,
        support_size: int,
        query_size: int,
        dtype: torch.dtype | None,
        warmup: int = 3,
    ):
        device = images.device
        if device.type != "cuda":
            raise ValueError("GraphedRunner needs the images on a CUDA device")
        self.model, self.optimizer, self.method, self.images = model, optimizer, method, images
        self.sizes = (support_size, query_size)
        self.warmup = warmup
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=dtype, cache_enabled=False)) if dtype else None
        )
        self.index = torch.zeros(
            (tasks_per_batch, support_size + query_size), dtype=torch.int64, device=device
        )
        self._host = torch.zeros((RING, *self.index.shape), dtype=torch.int64).pin_memory()
        self._copied: list[torch.cuda.Event | None] = [None] * RING
        # the graph holds the labels: taken from the first batch, required of every other
        self.labels: list[torch.Tensor] | None = None
        self._labels_device: list[torch.Tensor] = []
        self.losses = torch.zeros(
            1 if method.objective is None else tasks_per_batch, dtype=torch.float32, device=device
        )
        self.meta_loss = torch.zeros((), dtype=torch.float32, device=device)
        self.lr = torch.zeros((), dtype=torch.float32, device=device)
        self._lr_value: float | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self._steps = 0
        self._pending: list[tuple[int, float, list[str], torch.Tensor, torch.Tensor]] = []

    def _stage(self, batch: Sequence[TaskBatch]) -> None:
        """Copy the batch's indices into the graph's index buffer through the pinned ring."""
        if len(batch) != self.index.shape[0]:
            raise ValueError(
                f"{len(batch)} tasks in a batch; the graph holds {self.index.shape[0]}"
            )
        slot = self._steps % RING
        if self._copied[slot] is not None:
            self._copied[slot].synchronize()  # that slot's previous copy has been read
        host = self._host[slot]
        support = self.sizes[0]
        if self.labels is None:
            self.labels = [batch[0].support_labels.clone(), batch[0].query_labels.clone()]
            self._labels_device = [labels.to(self.index.device) for labels in self.labels]
        for row, task in enumerate(batch):
            if not (
                torch.equal(task.support_labels, self.labels[0])
                and torch.equal(task.query_labels, self.labels[1])
            ):
                raise ValueError(
                    "GraphedRunner needs every task's labels in the same order (the graph holds "
                    "them); the sampler's balanced batches put the fakes first"
                )
            host[row, :support] = task.support
            host[row, support:] = task.query
        self.index.copy_(host, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._copied[slot] = event

    def _body(self) -> None:
        support = self.sizes[0]
        tasks = [
            meta.TaskData(
                "",
                to_input(self.images[row[:support]]),
                self._labels_device[0],
                to_input(self.images[row[support:]]),
                self._labels_device[1],
            )
            for row in self.index
        ]
        self.optimizer.zero_grad(set_to_none=True)
        losses, meta_loss = self.method.backward(self.model, tasks, self.autocast)
        self.optimizer.step()
        self.losses.copy_(losses)
        self.meta_loss.copy_(meta_loss)

    def _capture(self) -> None:
        groups = self.optimizer.param_groups
        floats = [group["lr"] for group in groups]
        for group in groups:
            group["lr"] = self.lr  # the graph reads the rate from this tensor
        try:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._body()
        finally:
            for group, value in zip(groups, floats):
                group["lr"] = value
        log.info("training iteration captured as a CUDA graph after %d eager ones", self._steps)

    def step(self, batch: Sequence[TaskBatch], iteration: int, lr: float) -> None:
        self._stage(batch)
        if lr != self._lr_value:
            self.lr.fill_(lr)
            self._lr_value = lr
        if self._steps < self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._body()
            torch.cuda.current_stream().wait_stream(side)
        else:
            if self.graph is None:
                self._capture()  # records the work without running it
            self.graph.replay()
        self._steps += 1
        names = self.method.task_names(batch)
        self._pending.append((iteration, lr, names, self.losses.clone(), self.meta_loss.clone()))

    def drain(self) -> list[tuple[int, float, meta.StepRecord]]:
        """(iteration, learning rate, record) of every step since the last drain.

        Reads the losses in one transfer (this synchronises) and raises `DamlError` at the
        first non-finite one, naming its iteration and task.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return []
        losses = torch.stack([p[3] for p in pending]).cpu()
        meta_losses = torch.stack([p[4] for p in pending]).cpu()
        records = []
        for (iteration, lr, names, _, _), row, meta_loss in zip(pending, losses, meta_losses):
            meta.check_finite(row, names, iteration)
            records.append((iteration, lr, self.method.record(names, row, meta_loss)))
        return records
