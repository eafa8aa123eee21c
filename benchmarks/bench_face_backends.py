"""Face detector backends in frames per second: onnxruntime against torch, CPU and CUDA.

Description:
    Renders `--frames` talking-face frames of 720x528 pixels (`daml.data.synthetic.face`, one
    person per 8 frames, the size `bench_faces.py` uses) and runs `daml.faces.Detector` on
    them in batches of `--batch-size` (faces.batch_size) at each `--detect-max-side`
    (config.yaml's 360 and the schema's default 640), for every case:

    - onnxruntime on the CPU and torch on the CPU, at 1 thread and at all cores
      (`os.sched_getaffinity`), torch in its default NHWC layout and in NCHW;
    - where CUDA is present: torch on the GPU (NCHW and NHWC), and onnxruntime's CUDA provider
      when its GPU build is installed. Without CUDA the GPU part says so and is skipped.

    Every case makes one warm-up pass over the frames, then `--repeats` timed passes; the
    cases take turns within each repeat, so that load from other processes on a shared
    machine falls on all of them alike. The table gives frames per second, best and (median),
    of the whole detector (resize to the detect size, the package's `preprocess`, the
    network, `postprocess` with NMS) and of the network alone (the same batches, already
    preprocessed); the process's CPU time per frame of the detector (all threads; least and
    median), the main faces found and the largest landmark difference from onnxruntime on
    one CPU thread, which should stay within a pixel or two (a pixel at the detect size).

    The header prints what the figures depend on: CPU model (as lscpu names it), whether
    oneDNN has native bf16 (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`, unused here:
    both backends compute in float32), GPU name, torch, onnxruntime and onnx versions, and
    the git commit.

Example:
    python benchmarks/bench_face_backends.py                   # CPU, and GPU when present
    python benchmarks/bench_face_backends.py --gpu-only --frames 256 --repeats 5
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from retinaface.preprocess import preprocess  # noqa: E402

from daml import faces  # noqa: E402
from daml.data.synthetic.face import (  # noqa: E402
    Identity, make_background, render_face, talking_motion)
from daml.machine import cpu_model  # noqa: E402
from daml.runtime import native_bf16  # noqa: E402

WIDTH, HEIGHT = 720, 528
REPO = Path(__file__).resolve().parents[1]


def render(n: int) -> np.ndarray:
    """`n` frames, a new person and background every 8 frames."""
    images = []
    for start in range(0, n, 8):
        rng = np.random.default_rng(2000 + start)
        person, background = Identity.sample(rng), make_background(rng, WIDTH, HEIGHT)
        for motion in talking_motion(rng, min(8, n - start), 25.0, rng.uniform(0.4, 0.6),
                                     rng.uniform(0.45, 0.55), rng.uniform(0.22, 0.34)):
            images.append(render_face(person, motion, WIDTH, HEIGHT, background)[0])
    return np.stack(images)


def reference_case() -> dict:
    return dict(label="onnxruntime CPU, 1 thread", threads=1, backend="onnxruntime", device="cpu")


def cpu_cases(cores: int) -> list[dict]:
    """onnxruntime and torch (both layouts) on the CPU at 1 thread and at all cores."""
    found = []
    for threads in sorted({1, cores}):
        found.append(dict(reference_case(), label=f"onnxruntime CPU, {threads} thread(s)",
                          threads=threads))
        for layout in ("NHWC", "NCHW"):
            found.append(dict(label=f"torch CPU {layout}, {threads} thread(s)", threads=threads,
                              backend="torch", device="cpu", channels_last=layout == "NHWC"))
    return found


def gpu_cases() -> list[dict]:
    """torch on CUDA in both layouts, onnxruntime's CUDA provider where installed."""
    found = [dict(label=f"torch CUDA {layout}", threads=1, backend="torch", device="cuda",
                  channels_last=layout == "NHWC") for layout in ("NCHW", "NHWC")]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        found.append(dict(label="onnxruntime CUDA provider", threads=1, backend="onnxruntime",
                          device="cuda"))
    return found


def make_detector(case: dict, side: int) -> faces.Detector:
    detector = faces.Detector(0.9, side, case["threads"], case["backend"], case["device"])
    if case["backend"] == "torch":
        # the layout is the runner's choice; rebuild it to time both
        from daml.retinaface_torch import TorchRetinaFace
        from retinaface.weights import WEIGHTS

        detector.network = TorchRetinaFace(WEIGHTS, torch.device(case["device"]),
                                           channels_last=case["channels_last"])
    return detector


def use_threads(case: dict) -> None:
    """The case's CPU threads: torch's and OpenCV's are process-wide, set before each pass."""
    torch.set_num_threads(case["threads"])
    cv2.setNumThreads(case["threads"])


def synchronize(case: dict) -> None:
    if case["device"] != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()


def one_pass(function, batches, case: dict) -> tuple[float, float, list]:
    """(frames per second, process CPU ms per frame, results) of `function` over the batches."""
    n = sum(len(batch) for batch in batches)
    use_threads(case)
    synchronize(case)
    wall, cpu = time.perf_counter(), time.process_time()
    results = [function(batch) for batch in batches]
    synchronize(case)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, 1000 * cpu / n, results


def best_median(values: list[float], best=max) -> str:
    return f"{best(values):.1f} ({np.median(values):.1f})"


def measure(side: int, batches: list, all_cases: list[dict], repeats: int) -> None:
    """Print one table: every case timed in turn within each repeat (module docs)."""
    detectors = [make_detector(case, side) for case in all_cases]
    inputs = [preprocess(faces.resize_for_detection(batch, side)) for batch in batches]
    rates = [dict(detector=[], network=[], cpu=[]) for _ in all_cases]
    found = []
    for repeat in range(repeats + 1):  # pass 0 warms up (cuDNN picks its algorithms)
        for case, detector, rate in zip(all_cases, detectors, rates):
            fps, cpu, results = one_pass(detector.detect, batches, case)
            network_fps = one_pass(detector.network, inputs, case)[0]
            if repeat == 0:
                found.append([faces.main_face(per) for batch in results for per in batch])
                continue
            rate["detector"].append(fps)
            rate["network"].append(network_fps)
            rate["cpu"].append(cpu)
    print("| case | detector, frames/s | network alone, frames/s | detector, CPU ms/frame | "
          "main faces found | max landmark diff vs onnxruntime CPU, full-resolution px |")
    print("|---|---:|---:|---:|---:|---:|")
    reference = found[0]
    for case, rate, mains in zip(all_cases, rates, found):
        diffs = [np.abs(a.landmarks - b.landmarks).max() for a, b in zip(mains, reference)
                 if a is not None and b is not None]
        print(f"| {case['label']} | {best_median(rate['detector'])} | "
              f"{best_median(rate['network'])} | {best_median(rate['cpu'], min)} | "
              f"{sum(m is not None for m in mains)}/{len(mains)} | "
              f"{max(diffs) if diffs else float('nan'):.2f} |", flush=True)


def header(cores: int) -> str:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True).stdout.strip()
        commit += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
           else "none (CUDA not available)")
    return "\n".join([
        f"CPU: {cpu_model()}, {cores} core(s) usable; native bf16 (mkldnn): {native_bf16()}",
        f"GPU: {gpu}; onnxruntime providers: {', '.join(ort.get_available_providers())}",
        f"torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()}), onnxruntime "
        f"{ort.__version__}, onnx {onnx.__version__}, opencv {cv2.__version__}; commit {commit}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--detect-max-side", type=int, nargs="+", default=[360, 640])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-only", action="store_true",
                        help="skip the CPU part (the GPU table still starts with its reference)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    cores = len(os.sched_getaffinity(0))
    print(header(cores))
    images = render(args.frames)
    batches = [images[i:i + args.batch_size] for i in range(0, len(images), args.batch_size)]
    print(f"{len(images)} frames of {WIDTH}x{HEIGHT}, batches of {args.batch_size}; frames/s: "
          f"best (median) of {args.repeats} passes after one warm-up; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.gpu_only:
        for side in args.detect_max_side:
            print(f"\n=== CPU part, detect_max_side {side} ===\n")
            measure(side, batches, cpu_cases(cores), args.repeats)
    if not torch.cuda.is_available():
        print("\n=== GPU part: skipped, torch sees no CUDA device ===")
        return
    for side in args.detect_max_side:
        print(f"\n=== GPU part, {torch.cuda.get_device_name(0)}, detect_max_side {side} ===\n")
        measure(side, batches, [reference_case()] + gpu_cases(), args.repeats)


if __name__ == "__main__":
    main()
