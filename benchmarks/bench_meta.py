"""Speed of one first-order meta-iteration: `daml.meta.step` against an l2l-style loop,
with the tasks looped or batched into one pass.

Description:
    Conv-4 at 84 px, 4 tasks, support and query batches of 16, one inner step, first
    order. The reference is written here the way learn2learn's MAML
    example works: deep-copy the model per task, adapt the copy with autograd, backpropagate
    the query loss and add the copy's gradients into the original. Both start from the same
    weights and batches; their meta-gradients must agree in float64 and are reported in fp32
    (the reference weights each task's query gradient by d(L*sigmoid(L))/dL for DAML).
    Then both are timed (median
    of `--repeats`), ours in the training configuration (channels-last inputs and weights,
    bf16 autocast where the CPU/GPU has it, `--precision`).

    Beside the per-task loop, the same step with the tasks batched into one pass
    (`daml.batched`, `train.task_batching`: `grouped`, `vmap`; `--batchings`): its
    meta-gradient is checked against the loop's in float64 and it is timed in the same
    configuration, in the same interleaved rounds. (Graph replay is bench_gpu.py's.)

    Run:  python benchmarks/bench_meta.py [--threads 2] [--repeats 7] [--image-size 84]
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
import time

import torch
import torch.nn.functional as F

from daml import meta
from daml.models import build_model
from daml.runtime import autocast, runtime


def batches(tasks, size, image, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([1.0, 0.0] * (size // 2))
    out = []
    for i in range(tasks):
        xs = torch.randn(size, 3, image, image, generator=g)
        xq = torch.randn(size, 3, image, image, generator=g)
        out.append(
            meta.TaskData(
                f"t{i}", xs.to(device), labels.to(device), xq.to(device), labels.flip(0).to(device)
            )
        )
    return out


def reference_step(model, tasks, inner_lr, method):
    """learn2learn-style first-order loop: clone, adapt, query backward, accumulate."""
    model.zero_grad()
    for task in tasks:
        learner = copy.deepcopy(model)
        support_loss = F.binary_cross_entropy_with_logits(
            learner(task.support), task.support_labels
        )
        grads = torch.autograd.grad(support_loss, list(learner.parameters()))
        with torch.no_grad():
            for p, g in zip(learner.parameters(), grads):
                p -= inner_lr * g
        query_loss = F.binary_cross_entropy_with_logits(learner(task.query), task.query_labels)
        if method == "daml":
            s = torch.sigmoid(query_loss.detach())
            query_loss = query_loss * (s + query_loss.detach() * s * (1 - s))
        query_loss.backward()
        for p, q in zip(model.parameters(), learner.parameters()):
            p.grad = q.grad.clone() if p.grad is None else p.grad + q.grad


def ours_step(model, optimizer, tasks, inner_lr, method, make_autocast, batching="loop"):
    chosen = meta.make_method(method, inner_lr=inner_lr, task_batching=batching)
    meta.step(model, optimizer, tasks, chosen, 1, make_autocast)


def interleaved_medians(fns: dict, repeats: int, device) -> dict:
    """Median seconds of each function, timed in interleaved rounds (fair under CPU contention)."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    first = next(iter(fns))
    # ratio within each round, then the median: robust to load that changes between rounds
    medians["paired_ratio"] = {
        name: statistics.median(a / b for a, b in zip(times[first], values))
        for name, values in times.items()
        if name != first
    }
    medians["rounds"] = times
    return medians


def meta_gradient_difference(tasks, args, device, dtype, batching="loop", against=None) -> float:
    """Relative L2 difference of our meta-gradient in `dtype` (tasks looped or batched) and
    the reference's, or, with `against` ("loop"), our loop's."""
    model = build_model(args.image_size, seed=0).to(device, dtype)
    reference = copy.deepcopy(model)
    tasks = [
        meta.TaskData(
            t.name, *(x.to(dtype) for x in (t.support, t.support_labels, t.query, t.query_labels))
        )
        for t in tasks
    ]
    ours_step(model, torch.optim.SGD(model.parameters(), lr=0.0), tasks, args.inner_lr,
              args.method, None, batching)
    if against is None:
        reference_step(reference, tasks, args.inner_lr, args.method)
    else:
        ours_step(reference, torch.optim.SGD(reference.parameters(), lr=0.0), tasks,
                  args.inner_lr, args.method, None, against)
    ours_grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    ref_grad = torch.cat([p.grad.flatten() for p in reference.parameters()])
    return float((ours_grad - ref_grad).norm() / ref_grad.norm())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16, help="support and query size")
    parser.add_argument("--inner-lr", type=float, default=0.01)
    parser.add_argument("--method", default="daml", choices=["daml", "maml"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batchings", nargs="*", default=["grouped", "vmap"],
                        choices=["grouped", "vmap"], help="batched passes timed beside the loop")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device, dtype = runtime(args.device, args.precision)
    tasks = batches(args.tasks, args.batch, args.image_size, device)

    # 1. same meta-gradient: asserted in float64, where the sums' order cannot matter;
    # fp32 is reported (on a GPU, other kernels or atomics reorder the sums, and the batch
    # norms after every convolution make those gradients sums of cancelling terms)
    rel_error = meta_gradient_difference(tasks, args, device, torch.float64)
    assert rel_error < 1e-9, f"meta-gradients differ: relative error {rel_error:.2e}"
    rel_error_fp32 = meta_gradient_difference(tasks, args, device, torch.float32)
    # the batched passes: the loop's meta-gradient, in float64 again
    batched_errors = {
        batching: meta_gradient_difference(tasks, args, device, torch.float64, batching, "loop")
        for batching in args.batchings
    }
    for batching, error in batched_errors.items():
        assert error < 1e-9, f"{batching} and the loop differ: relative error {error:.2e}"

    # 2. timings: the reference as written, ours as training runs it
    reference = build_model(args.image_size, seed=0).to(device)
    fast = build_model(args.image_size, seed=0).to(device, memory_format=torch.channels_last)
    fast_tasks = [
        meta.TaskData(
            t.name,
            t.support.contiguous(memory_format=torch.channels_last),
            t.support_labels,
            t.query.contiguous(memory_format=torch.channels_last),
            t.query_labels,
        )
        for t in tasks
    ]
    optimizer = torch.optim.SGD(fast.parameters(), lr=0.0)
    make = (lambda: autocast(device, dtype)) if dtype is not None else None
    medians = interleaved_medians(
        {
            "reference": lambda: reference_step(reference, tasks, args.inner_lr, args.method),
            "ours": lambda: ours_step(
                fast, optimizer, fast_tasks, args.inner_lr, args.method, make
            ),
            "ours_fp32": lambda: ours_step(
                fast, optimizer, fast_tasks, args.inner_lr, args.method, None
            ),
            **{
                batching: functools.partial(
                    ours_step, fast, optimizer, fast_tasks, args.inner_lr, args.method, make,
                    batching,
                )
                for batching in args.batchings
            },
        },
        args.repeats,
        device,
    )
    t_ref, t_ours, t_ours32 = medians["reference"], medians["ours"], medians["ours_fp32"]
    result = {
        "device": str(device),
        "threads": args.threads,
        "image_size": args.image_size,
        "tasks": args.tasks,
        "batch": args.batch,
        "precision": str(dtype or "fp32"),
        "grad_rel_error_fp64": rel_error,
        "grad_rel_error_fp32": rel_error_fp32,
        "reference_s": round(t_ref, 4),
        "ours_s": round(t_ours, 4),
        "ours_fp32_channels_last_s": round(t_ours32, 4),
        "speedup": round(t_ref / t_ours, 2),
        "speedup_paired_median": round(medians["paired_ratio"]["ours"], 2),
    }
    for batching in args.batchings:
        result[f"{batching}_grad_rel_error_vs_loop_fp64"] = batched_errors[batching]
        result[f"{batching}_s"] = round(medians[batching], 4)
        # > 1: the batched pass is slower than the loop (median of the rounds' ratios)
        rounds = medians["rounds"]
        result[f"{batching}_over_loop_paired_median"] = round(
            statistics.median(b / a for a, b in zip(rounds["ours"], rounds[batching])), 2
        )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
