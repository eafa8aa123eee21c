"""Cost of one training iteration per backbone: time, peak memory and FLOPs, on this machine.

Each case runs in its own process (so its peak resident memory is its own): a model from
`daml.models.build_model`, `--tasks` tasks of `support + query` random faces, and
`--iterations` timed steps of the method (after one warm-up), in the precision `auto` picks
here. FLOPs are counted by `torch.utils.flop_counter` on one forward and backward of one
task's batch and multiplied out to the step; the GPU estimate divides them by a stated share
of a GPU's dense bf16 peak (an estimate, not a measurement).

    python benchmarks/bench_backbones.py                     # the table of benchmarks/README.md
    python benchmarks/bench_backbones.py --case conv4:32:daml  # one case, JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from daml import meta  # noqa: E402
from daml.machine import cpu_model  # noqa: E402
from daml.methods import Backbone  # noqa: E402
from daml.models import build_model  # noqa: E402
from daml.runtime import autocast, native_bf16, runtime  # noqa: E402

# (backbone, input side, method): the embedded default's sizes, then the literature's
CASES = [
    "conv4:32:daml", "conv4:32:erm", "conv4:84:daml",
    "legacy_xception:64:erm", "efficientnet_b4:64:erm", "efficientnet_b4:64:daml",
    "legacy_xception:299:erm", "efficientnet_b4:380:erm",
]
H200_BF16_DENSE = 989e12  # FLOP/s, NVIDIA's dense bf16 figure for the H200 (SXM)


def one_case(case: str, tasks: int, batch: int, iterations: int, threads: int) -> dict:
    name, size, method = case.split(":")
    size = int(size)
    device, dtype = runtime("cpu", "auto", threads)
    model = build_model(Backbone(name, size), seed=0).to(device, memory_format=torch.channels_last)
    model.train()
    g = torch.Generator().manual_seed(0)

    def faces():
        return (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).contiguous(
            memory_format=torch.channels_last)

    labels = torch.tensor([1.0, 0.0] * (batch // 2))
    data = [meta.TaskData(f"t{i}", faces(), labels, faces(), labels) for i in range(tasks)]
    chosen = meta.make_method(method, inner_lr=0.01, inner_steps=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    make_autocast = (lambda: autocast(device, dtype)) if dtype is not None else None
    meta.step(model, optimizer, data, chosen, 0, make_autocast)  # warm-up
    start = time.perf_counter()
    for i in range(iterations):
        meta.step(model, optimizer, data, chosen, i + 1, make_autocast)
    seconds = (time.perf_counter() - start) / iterations
    # a step passes 2 batches per task forward and backward (DAML/MAML: support and query,
    # first order; ERM: both pooled); backward taken as twice the forward, the usual rule:
    # torch's counter overcounts the backward of grouped (depthwise) convolutions ~3x
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(faces())
    step_flops = 3 * counter.get_total_flops() * 2 * tasks
    return {
        "case": case, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "step_s": seconds, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "step_gflop": step_flops / 1e9, "precision": "bf16" if dtype else "fp32",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", help="backbone:size:method; default: every case, one process each")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8, help="faces per support (and per query) batch")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpu-share", type=float, default=0.3,
                        help="share of the H200's dense bf16 peak assumed for the GPU estimate")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one_case(args.case, args.tasks, args.batch, args.iterations, args.threads)))
        return
    print(f"{cpu_model()}, native bf16: {native_bf16()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), {args.tasks} tasks x ({args.batch} + {args.batch}) faces")
    print("| backbone | px | method | parameters (M) | CPU s / iteration | peak memory (GiB) "
          "| GFLOP / iteration | H200 estimate, ms / iteration |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for case in CASES:
        done = subprocess.run(
            [sys.executable, __file__, "--case", case, "--tasks", str(args.tasks), "--batch",
             str(args.batch), "--iterations", str(args.iterations), "--threads", str(args.threads)],
            capture_output=True, text=True)
        if done.returncode != 0:
            print(f"| {case} | failed: {done.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        name, size, method = case.split(":")
        gpu_ms = r["step_gflop"] * 1e9 / (H200_BF16_DENSE * args.gpu_share) * 1e3
        print(f"| {name} | {size} | {method} | {r['params_m']:.2f} | {r['step_s']:.3f} "
              f"| {r['peak_rss_gib']:.2f} | {r['step_gflop']:.1f} | {gpu_ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
