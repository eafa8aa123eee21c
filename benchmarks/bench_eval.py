"""Evaluation throughput and the training data path against the training step.

Description:
    1. Frames per second of `daml.evaluate.predict` (eval mode, no_grad, batch norm folded
       into the convolutions, batches of `--eval-batch`) on random uint8 faces, at
       `--image-size`, against the former scoring (the model as it is, batches of 256).
    2. Time per iteration of the training data path (`daml.graphed.task_inputs`: draw a
       meta-batch of task indices, gather the uint8 faces, normalise to float
       channels-last) against the time of one meta-step (`daml.meta.step`) on that
       batch: the loader must be a small fraction of the step.

    Run:  python benchmarks/bench_eval.py [--image-size 84] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd
import torch

from daml import meta
from daml.data import ffpp
from daml.evaluate import predict
from daml.facedata import to_input
from daml.models import build_model
from daml.runtime import autocast, runtime
from daml.tasks import TaskSampler, build_tasks
from daml.graphed import task_inputs

TECHNIQUES = list(ffpp.TECHNIQUES)


def faces_table(n_faces: int) -> pd.DataFrame:
    technique = np.array(["real"] + TECHNIQUES)[np.arange(n_faces) % 5]
    return pd.DataFrame(
        {
            "technique": technique,
            "label": (technique != "real").astype(int),
            "video": [f"{i // 32:04d}" for i in range(n_faces)],
            "key": [f"ffpp/c23/{technique[i]}/{i // 32:04d}" for i in range(n_faces)],
        }
    )


@torch.no_grad()
def former_predict(model, images, batch_size, device, dtype):
    """The reference: scoring with the model as it is (batch norm not folded)."""
    model.eval()
    for start in range(0, images.shape[0], batch_size):
        with autocast(device, dtype):
            model(to_input(images[start : start + batch_size].to(device)))


def timed(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--faces", type=int, default=20000, help="faces held in memory")
    parser.add_argument("--eval-faces", type=int, default=2048)
    parser.add_argument("--eval-batch", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device, dtype = runtime(args.device, args.precision)
    size = args.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.faces, size, size, 3), dtype=torch.uint8, generator=g)
    images = images.to(device)
    model = build_model(size, seed=0).to(device, memory_format=torch.channels_last)

    eval_images = images[: args.eval_faces]
    t_eval = timed(
        lambda: predict(model, eval_images, args.eval_batch, device, dtype), args.repeats
    )
    t_former = timed(
        lambda: former_predict(model, eval_images, 256, device, dtype), args.repeats
    )

    sampler = TaskSampler(
        build_tasks(faces_table(args.faces), TECHNIQUES, 1),
        args.tasks,
        args.batch,
        args.batch,
        seed=0,
    )
    t_data = timed(lambda: task_inputs(sampler.sample(), images), max(args.repeats, 20))
    batch = task_inputs(sampler.sample(), images)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    make = (lambda: autocast(device, dtype)) if dtype is not None else None
    t_step = timed(
        lambda: meta.step(model, optimizer, batch, meta.make_method("daml"), 1, make),
        args.repeats,
    )
    result = {
        "device": str(device),
        "threads": args.threads,
        "image_size": size,
        "precision": str(dtype or "fp32"),
        "eval_frames_per_s": round(args.eval_faces / t_eval, 1),
        "former_eval_frames_per_s": round(args.eval_faces / t_former, 1),
        "data_path_ms_per_iteration": round(1000 * t_data, 3),
        "meta_step_ms": round(1000 * t_step, 2),
        "data_fraction_of_step": round(t_data / t_step, 4),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
