"""GPU speed of meta-training: step variants, the l2l-style reference, the full paper schedule.

Description:
    Run on a CUDA machine. Three parts, each printing one JSON line, then a summary table:

    1. `steps`: milliseconds per training iteration (Conv-4, `--tasks` tasks, support and
       query of `--batch`, one first-order inner step, DAML) for each runner of
       `daml.graphed` (eager, CUDA-graph replay) in fp32 and bf16 autocast, each with the
       tasks looped (`daml.meta`) or batched into one pass (`daml.batched`: `grouped`,
       `vmap`; `--batchings`), and for the learn2learn-style reference loop of
       bench_meta.py (fp32, model copies), all on the same faces held on the GPU. Medians
       of `--repeats` timed blocks of `--block` iterations after a warm-up; the host clock
       is read after a device synchronise. Each variant's first-iteration losses (same
       weights, same batch) are compared with the eager loop's at the same precision (they
       should agree to rounding, about 1e-6 in fp32), and its weights after
       `--check-iterations` with the eager fp32 loop's (relative L2 difference; Adam
       amplifies rounding, so these drift apart by 1e-3 or so even when all is right).
    2. `schedule`: the paper's whole meta-training, `daml.train.train_model` with the
       schema defaults (3000 iterations, 4 tasks of 16 + 16, validation on up to 4096
       faces and a checkpoint every 100 iterations) at `--image-size`, on synthetic face
       shards written first (random faces with a per-technique trace, `--train-videos`
       videos per class and technique, `--frames` frames each). Wall time of the call,
       loading included, and of the loop alone (from the log), for each runner named in
       `--schedule-runners` (the batching is the runner's: `train.task_batching`).
    3. The machine: GPU name, torch and CUDA versions.

    `--device cpu` runs the eager runners only (looped and batched), a check of the
    script's code paths; use small `--block`, `--repeats` and `--iterations` there.

    Run:  python benchmarks/bench_gpu.py [--image-size 128] [--out results.json]
          python benchmarks/bench_gpu.py --device cpu --image-size 32 --block 2 --repeats 1 \
              --warmup 1 --iterations 4 --train-videos 4 --val-videos 4 --frames 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from daml.adapt import AdaptSettings
from daml.config import schema_defaults
from daml.data import ffpp
from daml.facedata import write_face_shards
from daml.graphed import EagerRunner, GraphedRunner, task_inputs
from daml.meta import make_method
from daml.models import build_model
from daml.tasks import Task, TaskSampler
from daml.train import TrainSettings, train_model

sys.path.insert(0, str(Path(__file__).parent))
from bench_meta import reference_step  # noqa: E402  (the same reference as on the CPU)

REPO = Path(__file__).resolve().parents[1]
TECHNIQUES = list(ffpp.TECHNIQUES)
BASE_RUNNERS = {  # name -> (graph replay, autocast dtype); the tasks looped
    "eager_fp32": (False, None),
    "eager_bf16": (False, torch.bfloat16),
    "graph_fp32": (True, None),
    "graph_bf16": (True, torch.bfloat16),
}
BATCHINGS = ("loop", "grouped", "vmap")  # train.task_batching without auto
# name -> (graph replay, autocast dtype, task batching): "graph_bf16" loops the tasks,
# "graph_bf16_grouped" runs them as one pass
RUNNERS = {
    name if batching == "loop" else f"{name}_{batching}": (graphed, dtype, batching)
    for batching in BATCHINGS
    for name, (graphed, dtype) in BASE_RUNNERS.items()
}


def synthetic_faces(count: int, size: int, technique: str, rng: np.random.Generator):
    """Noisy faces; fakes carry a technique's periodic trace so training has signal."""
    faces = rng.integers(40, 216, (count, size, size, 3), dtype=np.uint8)
    step = {"Deepfakes": (4, 1), "Face2Face": (1, 4), "FaceSwap": (4, 4), "NeuralTextures": (2, 2)}
    if technique in step:
        dy, dx = step[technique]
        faces[:, ::dy, ::dx] += 30
    return faces


def write_shards(folder: Path, size: int, videos: dict, frames: int, shards: int, seed=0):
    """Face shards in the face stage's format (`daml.facedata.write_face_shards`)."""
    rng = np.random.default_rng(seed)

    def faces():
        for split, count in videos.items():
            for v in range(count):
                for technique in ["real", *TECHNIQUES]:
                    target = f"{split}{v:04d}"
                    source = "" if technique == "real" else f"{split}{v + 5000:04d}"
                    video = target + (f"_{source}" if source else "")
                    crops = synthetic_faces(frames, size, technique, rng)
                    for f in range(frames):
                        row = dict(key=f"ffpp/c23/{technique}/{video}", dataset="ffpp",
                                   technique=technique, compression="c23", video=video,
                                   split=split, label=int(technique != "real"), target_id=target,
                                   source_id=source, clip_id=target, frame=f, score=0.99,
                                   how="detected")
                        yield row, crops[f]

    return write_face_shards(folder, faces(), shards)


def make_runner(name, model, images, args):
    graphed, dtype, batching = RUNNERS[name]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graphed)
    method = make_method("daml", task_batching=batching)
    if graphed:
        return GraphedRunner(
            model,
            optimizer,
            method,
            images,
            args.tasks,
            args.batch,
            args.batch,
            dtype,
        )
    make = (lambda: torch.autocast(images.device.type, dtype=dtype)) if dtype else None
    return EagerRunner(model, optimizer, method, images, make)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def runners(device, batchings=BATCHINGS) -> list[str]:
    """Every runner of `batchings` on a GPU; the eager ones on a CPU (a dry run of this script)."""
    return [
        name
        for name, (graphed, _, batching) in RUNNERS.items()
        if (device.type == "cuda" or not graphed) and batching in batchings
    ]


def time_blocks(run_one, args, device) -> list[float]:
    """Milliseconds per iteration of `args.repeats` blocks of `args.block` iterations."""
    for _ in range(args.warmup):
        run_one()
    sync(device)
    per_iteration = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.block):
            run_one()
        sync(device)
        per_iteration.append(1000 * (time.perf_counter() - start) / args.block)
    return per_iteration


def steps_part(args, device) -> dict:
    g = torch.Generator().manual_seed(0)
    count = 4096
    images = torch.randint(
        0, 256, (count, args.image_size, args.image_size, 3), generator=g, dtype=torch.uint8
    ).to(device)
    per_task = count // args.tasks
    tasks = [
        Task(
            f"t{i}",
            np.arange(per_task * i, per_task * i + per_task // 2),
            np.arange(per_task * i + per_task // 2, per_task * (i + 1)),
        )
        for i in range(args.tasks)
    ]
    results = {}
    reference_weights, reference_losses = None, {}
    for name in runners(device, ("loop", *args.batchings)):
        # same start and batches as every other variant: equal weights are expected
        model = build_model(args.image_size, seed=0).to(device, memory_format=torch.channels_last)
        runner = make_runner(name, model, images, args)
        sampler = TaskSampler(tasks, args.tasks, args.batch, args.batch, seed=0)
        for i in range(1, args.check_iterations + 1):
            runner.step(sampler.sample(), i, 1e-3)
        first_losses = torch.tensor(runner.drain()[0][2].query_losses)
        weights = torch.cat([p.detach().float().flatten() for p in model.parameters()])
        if reference_weights is None:  # the first runner, eager_fp32: the tasks looped
            reference_weights = weights
        # the eager loop of each precision runs before the other runners of that precision
        precision = RUNNERS[name][1]
        reference_losses.setdefault(precision, first_losses)
        difference = float((weights - reference_weights).norm() / reference_weights.norm())
        loss_difference = float((first_losses - reference_losses[precision]).abs().max())
        counter = iter(range(args.check_iterations + 1, 10**9))

        def one():
            i = next(counter)
            runner.step(sampler.sample(), i, 1e-3)
            if i % 50 == 0:
                runner.drain()

        times = time_blocks(one, args, device)
        runner.drain()
        results[name] = {
            "ms": round(statistics.median(times), 3),
            "ms_repeats": [round(t, 3) for t in times],
            "first_losses_max_abs_diff_vs_eager_loop": loss_difference,
            "weights_rel_diff_vs_eager_fp32": difference,
        }
        print(json.dumps({"part": "steps", "runner": name, **results[name]}), flush=True)

    # the learn2learn-style reference (model copies, plain autograd), fp32
    model = build_model(args.image_size, seed=0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = TaskSampler(tasks, args.tasks, args.batch, args.batch, seed=0)

    def reference_one():
        reference_step(model, task_inputs(sampler.sample(), images), 0.01, "daml")
        optimizer.step()

    times = time_blocks(reference_one, args, device)
    results["reference_l2l_fp32"] = {
        "ms": round(statistics.median(times), 3),
        "ms_repeats": [round(t, 3) for t in times],
    }
    print(
        json.dumps(
            {"part": "steps", "runner": "reference_l2l_fp32", **results["reference_l2l_fp32"]}
        ),
        flush=True,
    )
    return results


class LoopTimer(logging.Handler):
    """Reads the loop's start and end from train_model's log (first and last iteration line)."""

    def __init__(self):
        super().__init__()
        self.marks = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith(("source ", "best validation")):
            self.marks.append((message.split(" ")[0], time.perf_counter()))


def schedule_part(args, device) -> dict:
    schema = schema_defaults(REPO / "workflow/schemas/config.schema.yaml")
    defaults = schema["train"]
    selection = AdaptSettings(**{**schema["adapt"], "threads": 0})
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = {"train": args.train_videos, "val": args.val_videos}
        start = time.perf_counter()
        shards = write_shards(tmp, args.image_size, videos, args.frames, shards=4)
        written = time.perf_counter() - start
        # a CPU has no graph replay: its dry run trains the same settings eagerly
        names = [n if device.type == "cuda" else n.replace("graph_", "eager_", 1)
                 for n in args.schedule_runners]
        for name in [n for n in dict.fromkeys(names) if n in runners(device)]:
            graphed, dtype, batching = RUNNERS[name]
            settings = TrainSettings(
                **{
                    **defaults,
                    "image_size": args.image_size,
                    "device": device.type,
                    "precision": "bf16" if dtype else "fp32",
                    "cuda_graph": graphed,
                    "task_batching": batching,
                    "threads": 0,
                    **({"iterations": args.iterations} if args.iterations else {}),
                }
            )
            timer = LoopTimer()
            logging.getLogger("daml.train").addHandler(timer)
            logging.getLogger("daml.train").setLevel(logging.INFO)
            out = tmp / name
            out.mkdir()
            sync(device)
            start = time.perf_counter()
            summary = train_model(
                shards,
                {"faceset": "ffpp-c23", "techniques": TECHNIQUES},
                "daml",
                0,
                settings,
                selection,
                out / "model.pt",
                out / "history.csv",
                out / "validation.csv",
                out / "checkpoint.pt",
            )
            sync(device)
            total = time.perf_counter() - start
            logging.getLogger("daml.train").removeHandler(timer)
            marks = dict(timer.marks)
            loop = marks["best"] - marks["source"]
            validation = pd.read_csv(out / "validation.csv")
            history = pd.read_csv(out / "history.csv")
            per_iteration = history.groupby("iteration").query_loss.mean()
            results[name] = {
                "iterations": settings.iterations,
                "image_size": settings.image_size,
                "total_s": round(total, 2),
                "after_loading_s": round(loop, 2),
                "validations": len(validation),
                "best_val_auc": round(float(summary["auc"]), 4),
                # that training learned: query loss early and late, validation AUC curve
                "query_loss_first_50": round(float(per_iteration.iloc[:50].mean()), 4),
                "query_loss_last_50": round(float(per_iteration.iloc[-50:].mean()), 4),
                "val_auc_curve": [round(float(a), 3) for a in validation.auc],
            }
            print(json.dumps({"part": "schedule", "runner": name, **results[name]}), flush=True)
        results["shards_written_s"] = round(written, 2)
        results["train_faces"] = args.train_videos * 5 * args.frames
        results["val_faces"] = args.val_videos * 5 * args.frames
        results["settings"] = {
            k: v
            for k, v in dataclasses.asdict(settings).items()
            if k not in ("device", "precision", "cuda_graph", "task_batching")
        }
    return results


def print_steps_table(steps: dict) -> None:
    """ms per iteration, one row per runner and precision, one column per task batching."""
    if not steps:
        return
    print(f"  {'ms / iteration':22s}" + "".join(f"{b:>12s}" for b in BATCHINGS))
    for base in BASE_RUNNERS:
        cells = [steps.get(base if b == "loop" else f"{base}_{b}") for b in BATCHINGS]
        if any(cells):
            print(f"  {base:22s}" + "".join(
                f"{c['ms']:12.2f}" if c else f"{'-':>12s}" for c in cells
            ))
    if "reference_l2l_fp32" in steps:
        print(f"  {'reference_l2l_fp32':22s}{steps['reference_l2l_fp32']['ms']:12.2f}")
    for name, row in steps.items():
        if "first_losses_max_abs_diff_vs_eager_loop" in row:
            print(f"  {name:22s} first losses {row['first_losses_max_abs_diff_vs_eager_loop']:.1e} "
                  "from the eager loop's at that precision; weights after the check "
                  f"{row['weights_rel_diff_vs_eager_fp32']:.1e} from eager_fp32's")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16, help="support and query size")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--check-iterations", type=int, default=10)
    parser.add_argument(
        "--iterations",
        type=int,
        default=0,
        help="schedule iterations (0: the schema default, 3000)",
    )
    parser.add_argument("--train-videos", type=int, default=80)
    parser.add_argument("--val-videos", type=int, default=60)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batchings", nargs="*", default=["grouped", "vmap"],
                        choices=["grouped", "vmap"], help="batched runners besides the loop")
    parser.add_argument(
        "--schedule-runners",
        nargs="*",
        default=["graph_bf16_grouped", "graph_bf16", "graph_bf16_vmap"],
        choices=sorted(RUNNERS),
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["steps", "schedule"])
    parser.add_argument(
        "--device",
        default="cuda",
        help="cpu runs the eager runners only: a quick check of the script",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: this benchmark measures the GPU path")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        props = torch.cuda.get_device_properties(device)
        gpu = {"gpu": props.name, "multiprocessors": props.multi_processor_count}
    else:
        gpu = {"gpu": "none (cpu)"}
    result = {
        **gpu,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    print(json.dumps({"part": "machine", **result}), flush=True)
    if "steps" not in args.skip:
        result["steps"] = steps_part(args, device)
    if "schedule" not in args.skip:
        result["schedule"] = schedule_part(args, device)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    print(
        f"\n{result['gpu']}, {args.image_size} px, {args.tasks} tasks x ({args.batch}+{args.batch})"
    )
    print_steps_table(result.get("steps", {}))
    for name, row in result.get("schedule", {}).items():
        if isinstance(row, dict) and "total_s" in row:
            print(
                f"  schedule {name:16s} {row['iterations']} iterations: {row['total_s']:.1f} s "
                f"total, {row['after_loading_s']:.1f} s after loading"
            )
    return result


if __name__ == "__main__":
    main()
