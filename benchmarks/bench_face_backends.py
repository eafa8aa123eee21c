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

    Each case: one warm-up pass over the frames, then `--repeats` timed passes; the table
    gives the best and the median frames per second of the whole detector (resize to the detect size,
    the package's `preprocess`, the network, `postprocess` with NMS) and of the network
    alone (the same batches, already preprocessed), plus the faces found and the largest
    landmark difference from onnxruntime on the CPU, which should stay within a pixel.

    The header prints what the figures depend on: CPU model (as lscpu names it), whether
    oneDNN has native bf16 (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`, unused here:
    both backends compute in float32), GPU name, torch, onnxruntime and onnx versions, and
    the git commit.

Example:
    python benchmarks/bench_face_backends.py                   # CPU, and GPU when present
    python benchmarks/bench_face_backends.py --frames 256 --repeats 5
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
from daml.data.synthetic.face import Identity, make_background, render_face, talking_motion  # noqa: E402
from daml.machine import cpu_model  # noqa: E402
from daml.runtime import native_bf16  # noqa: E402

WIDTH, HEIGHT = 720, 528
REPO = Path(__file__).resolve().parents[1]


def render(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """`n` frames, a new person and background every 8 frames, with true landmarks."""
    images, truth = [], []
    for start in range(0, n, 8):
        rng = np.random.default_rng(2000 + start)
        person, background = Identity.sample(rng), make_background(rng, WIDTH, HEIGHT)
        for motion in talking_motion(rng, min(8, n - start), 25.0, rng.uniform(0.4, 0.6),
                                     rng.uniform(0.45, 0.55), rng.uniform(0.22, 0.34)):
            image, landmarks = render_face(person, motion, WIDTH, HEIGHT, background)
            images.append(image)
            truth.append(landmarks)
    return np.stack(images), truth


def cases(cores: int) -> list[dict]:
    """(label, Detector arguments, torch layout) of every case this machine can run."""
    found = []
    for threads in sorted({1, cores}):
        found.append(dict(label=f"onnxruntime CPU, {threads} thread(s)", threads=threads,
                          backend="onnxruntime", device="cpu"))
        for layout in ("NHWC", "NCHW"):
            found.append(dict(label=f"torch CPU {layout}, {threads} thread(s)", threads=threads,
                              backend="torch", device="cpu", channels_last=layout == "NHWC"))
    if torch.cuda.is_available():
        for layout in ("NCHW", "NHWC"):
            found.append(dict(label=f"GPU: torch CUDA {layout}", threads=1, backend="torch",
                              device="cuda", channels_last=layout == "NHWC"))
        if "CUDAExecutionProvider" in ort.get_available_providers():
            found.append(dict(label="GPU: onnxruntime CUDA provider", threads=1,
                              backend="onnxruntime", device="cuda"))
    return found


def make_detector(case: dict, side: int) -> faces.Detector:
    cv2.setNumThreads(case["threads"])
    detector = faces.Detector(0.9, side, case["threads"], case["backend"], case["device"])
    if case["backend"] == "torch":
        # the layout is the runner's choice; rebuild it to time both
        from daml.retinaface_torch import TorchRetinaFace
        from retinaface.weights import WEIGHTS

        detector.network = TorchRetinaFace(WEIGHTS, torch.device(case["device"]),
                                           channels_last=case["channels_last"])
    return detector


def synchronize(case: dict) -> None:
    if case["device"] != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function, batches, repeats: int, case: dict) -> tuple[str, list]:
    """Frames per second of `function` over all batches, "best (median)", and its results.

    The best pass is the one least disturbed by other processes on a shared machine.
    """
    results = [function(batch) for batch in batches]  # warm-up (cuDNN picks its algorithms)
    n = sum(len(batch) for batch in batches)
    rates = []
    for _ in range(repeats):
        synchronize(case)
        start = time.perf_counter()
        results = [function(batch) for batch in batches]
        synchronize(case)
        rates.append(n / (time.perf_counter() - start))
    return f"{max(rates):.1f} ({np.median(rates):.1f})", results


def header(cores: int) -> str:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        commit += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CUDA not available)"
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
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    cores = len(os.sched_getaffinity(0))
    print(header(cores))
    images, _ = render(args.frames)
    batches = [images[i:i + args.batch_size] for i in range(0, len(images), args.batch_size)]
    print(f"{len(images)} frames of {WIDTH}x{HEIGHT}, batches of {args.batch_size}; frames/s: "
          f"best (median) of {args.repeats} passes after one warm-up; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not torch.cuda.is_available():
        print("GPU part: skipped, torch sees no CUDA device")
    for side in args.detect_max_side:
        print(f"\ndetect_max_side {side}:\n")
        print("| case | detector, frames/s | network alone, frames/s | main faces found | "
              "max landmark diff vs onnxruntime CPU, full-resolution px |")
        print("|---|---:|---:|---:|---:|")
        reference = None
        for case in cases(cores):
            detector = make_detector(case, side)
            detect_fps, found = timed(detector.detect, batches, args.repeats, case)
            small = [preprocess(faces.resize_for_detection(batch, side)) for batch in batches]
            network_fps, _ = timed(detector.network, small, args.repeats, case)
            mains = [faces.main_face(per) for batch in found for per in batch]
            if reference is None:
                reference = mains
            diffs = [np.abs(a.landmarks - b.landmarks).max() for a, b in zip(mains, reference)
                     if a is not None and b is not None]
            print(f"| {case['label']} | {detect_fps} | {network_fps} | "
                  f"{sum(m is not None for m in mains)}/{len(mains)} | "
                  f"{max(diffs) if diffs else float('nan'):.2f} |", flush=True)


if __name__ == "__main__":
    main()
