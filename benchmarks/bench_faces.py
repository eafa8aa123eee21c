"""Benchmark the face stage against the reference pipeline of the most used deepfake benchmark.

Description:
    Renders talking-face videos of 720x528 pixels with known landmarks
    (`daml.data.synthetic.face`), encodes them with libx264 (CRF 23), then times per sampled
    frame:

    - ours: the whole stage, `daml.frames.extract_shard` (decode + sample + store) followed by
      `daml.faces.align_shard` (load + RetinaFace at `detect_max_side` + 5-point similarity
      alignment + store);
    - reference (DeepfakeBench's preprocessing): dlib's HOG frontal face detector with
      upsample 1, dlib's 68-landmark shape predictor from `face-recognition-models`, the 5
      points taken from the 68 (eye centres, nose tip, mouth corners) and the same similarity
      alignment and store, run on the same decoded frames.

    It prints medians over repeats, the ratio, face recall (sampled frames with a face found;
    every rendered frame holds one face), landmark error against the rendered truth (mean
    5-point error over the inter-ocular distance), and the peak resident memory of a shard
    job (`resource.getrusage` of a child process) for two shard sizes.

    Benchmark-only dependencies: `pip install dlib-bin face-recognition-models` (the model
    file is located without importing `face_recognition_models`, whose import needs
    `pkg_resources`).

Example:
    python benchmarks/bench_faces.py --videos 4 --frames 64 --per-video 32 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd

from daml import faces, frames
from daml.data.synthetic.face import Identity, make_background, render_face, talking_motion

WIDTH, HEIGHT = 720, 528
MANIFEST_COLUMNS = ["key", "dataset", "technique", "compression", "video", "split", "label",
                    "path", "member", "target_id", "source_id", "clip_id"]


def face_settings(threads_detect_side: int, crop_size: int) -> faces.FaceSettings:
    return faces.FaceSettings(crop_size=crop_size, margin=1.3, score_threshold=0.9,
                              detect_max_side=threads_detect_side, batch_size=8,
                              pad_sequences=0.25, fallback_for_sequences=True,
                              fallback_for_videos=False)


def make_videos(folder: Path, n_videos: int, n_frames: int) -> tuple[Path, dict]:
    """Render and encode the videos; return the manifest path and true landmarks per key."""
    rows, truth = [], {}
    for v in range(n_videos):
        rng = np.random.default_rng(1000 + v)
        person = Identity.sample(rng)
        background = make_background(rng, WIDTH, HEIGHT)
        size = rng.uniform(0.22, 0.34)
        motions = talking_motion(rng, n_frames, 25.0, rng.uniform(0.4, 0.6),
                                 rng.uniform(0.45, 0.55), size)
        path = folder / f"{v:03d}.mp4"
        key = f"ffpp/c23/real/{v:03d}"
        marks = []
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            stream.options = {"crf": "23"}
            for motion in motions:
                image, landmarks = render_face(person, motion, WIDTH, HEIGHT, background)
                marks.append(landmarks)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        truth[key] = np.stack(marks)
        rows.append(dict(key=key, dataset="ffpp", technique="real", compression="c23",
                         video=f"{v:03d}", split="test", label=0, path=str(path), member="",
                         target_id=f"{v:03d}", source_id="", clip_id=f"{v:03d}"))
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(manifest, index=False)
    return manifest, truth


def nme(found: np.ndarray, true: np.ndarray) -> float:
    """Mean 5-point error over the inter-ocular distance."""
    return float(np.linalg.norm(found - true, axis=1).mean() / np.linalg.norm(true[0] - true[1]))


def run_ours(manifest: Path, work: Path, args) -> dict:
    frame_settings = frames.FrameSettings(per_video=args.per_video, max_side=0, compress=False)
    settings = face_settings(args.detect_max_side, args.crop_size)
    decode, face, total = [], [], []
    for repeat in range(args.repeats):
        out = work / f"ours{repeat}"
        t0 = time.perf_counter()
        frames.extract_shard(manifest, out / "frames", "ffpp", "c23", 0, 1, frame_settings)
        t1 = time.perf_counter()
        counts = faces.align_shard(out / "frames", out / "shard0.npz", out / "shard0.csv",
                                   out / "shard0.skips.csv", settings, args.threads)
        t2 = time.perf_counter()
        n = counts["frames"]
        decode.append((t1 - t0) / n)
        face.append((t2 - t1) / n)
        total.append((t2 - t0) / n)
    return dict(decode=decode, face=face, total=total, counts=counts, out=out)


def reference_models():
    import dlib

    location = importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]
    predictor = dlib.shape_predictor(
        os.path.join(location, "models", "shape_predictor_68_face_landmarks.dat"))
    return dlib.get_frontal_face_detector(), predictor


def five_from_68(shape) -> np.ndarray:
    """Eye centres (36-41, 42-47), nose tip (30), mouth corners (48, 54); RetinaFace order."""
    points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
    return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48],
                     points[54]])


def run_reference(frames_dir: Path, work: Path, args):
    detector, predictor = reference_models()
    index = pd.read_csv(frames_dir / "index.csv", keep_default_na=False)
    loaded = []
    for row in index.itertuples():
        with np.load(frames_dir / row.file) as data:
            loaded.append((row.key, data["frames"], data["indices"]))
    n = sum(len(f) for _, f, _ in loaded)
    times, found = [], {}
    for repeat in range(args.repeats):
        crops = []
        t0 = time.perf_counter()
        for key, video, indices in loaded:
            for image, frame in zip(video, indices):
                rects = detector(image, 1)
                if not rects:
                    continue
                rect = max(rects, key=lambda r: r.width() * r.height())
                landmarks = five_from_68(predictor(image, rect))
                crop, _ = faces.align_face(image, landmarks, args.crop_size, 1.3)
                crops.append(crop)
                found[(key, int(frame))] = landmarks
        np.savez(work / f"reference{repeat}.npz",
                 crops=np.stack(crops) if crops else np.zeros((0, args.crop_size,
                                                               args.crop_size, 3), np.uint8))
        times.append((time.perf_counter() - t0) / n)
    return dict(face=times, found=found, n=n)


def memory_job(manifest: str, work: str, per_video: int, detect_max_side: int,
               crop_size: int) -> None:
    """Run one shard job (frames then faces) and print its peak resident memory in MiB."""
    out = Path(work)
    frames.extract_shard(manifest, out / "frames", "ffpp", "c23", 0, 1,
                         frames.FrameSettings(per_video=per_video, max_side=0, compress=False))
    counts = faces.align_shard(out / "frames", out / "shard0.npz", out / "shard0.csv",
                               out / "shard0.skips.csv",
                               face_settings(detect_max_side, crop_size), 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"peak_mib": peak, "crops": counts["detected"]}))


def measure_memory(manifest: Path, work: Path, args, copies: int) -> dict:
    """Peak memory of a shard job whose manifest repeats the videos `copies` times."""
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    parts = []
    for copy in range(copies):
        part = table.copy()
        part["key"] = part["key"] + f"-{copy}"
        parts.append(part)
    bigger = work / f"manifest_x{copies}.csv"
    pd.concat(parts).to_csv(bigger, index=False)
    result = subprocess.run(
        [sys.executable, __file__, "--memory-job", str(bigger), str(work / f"mem_x{copies}"),
         "--per-video", str(args.per_video), "--detect-max-side", str(args.detect_max_side),
         "--crop-size", str(args.crop_size)],
        capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=64, help="frames per rendered video")
    parser.add_argument("--per-video", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--detect-max-side", type=int, default=360)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--memory-copies", type=int, nargs=2, default=(1, 8))
    parser.add_argument("--memory-job", nargs=2, metavar=("MANIFEST", "WORK"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.memory_job:
        memory_job(*args.memory_job, args.per_video, args.detect_max_side, args.crop_size)
        return
    import cv2

    cv2.setNumThreads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_faces.") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        manifest, truth = make_videos(work, args.videos, args.frames)
        print(f"rendered {args.videos} videos x {args.frames} frames of {WIDTH}x{HEIGHT} "
              f"in {time.perf_counter() - start:.1f} s; sampling {args.per_video} per video; "
              f"{args.repeats} repeats; {args.threads} detector thread(s); "
              f"detect_max_side {args.detect_max_side}; crops {args.crop_size}")
        ours = run_ours(manifest, work, args)
        reference = run_reference(ours["out"] / "frames", work, args)

        table = pd.read_csv(ours["out"] / "shard0.csv", keep_default_na=False)
        n = ours["counts"]["frames"]
        ours_recall = ours["counts"]["detected"] / n
        ref_recall = len(reference["found"]) / reference["n"]
        lm = [f"lm{i}{a}" for i in range(5) for a in "xy"]
        ours_nme = np.median([nme(row[lm].to_numpy(float).reshape(5, 2),
                                  truth[row["key"]][int(row["frame"])])
                              for _, row in table.iterrows()])
        ref_nme = np.median([nme(found, truth[key][frame])
                             for (key, frame), found in reference["found"].items()])
        med = {name: float(np.median(values)) * 1000 for name, values in
               [("decode", ours["decode"]), ("ours_face", ours["face"]),
                ("ours_total", ours["total"]), ("ref_face", reference["face"])]}
        ref_total = med["ref_face"] + med["decode"]
        print(f"per sampled frame, median of {args.repeats} repeats (ms):")
        print(f"  decode+sample+store (shared)   {med['decode']:8.2f}")
        print(f"  ours: load+detect+align+store  {med['ours_face']:8.2f}")
        print(f"  ref : dlib HOG+68pt+align+store{med['ref_face']:8.2f}")
        print(f"  ours whole stage               {med['ours_total']:8.2f}")
        print(f"  ref whole stage (same decode)  {ref_total:8.2f}")
        print(f"ratio ours/ref, face work: 1/{med['ref_face'] / med['ours_face']:.1f}; "
              f"whole stage: 1/{ref_total / med['ours_total']:.1f}")
        print(f"recall: ours {ours_recall:.3f} ({ours['counts']['detected']}/{n}), "
              f"ref {ref_recall:.3f} ({len(reference['found'])}/{reference['n']})")
        print(f"5-point error / inter-ocular distance (median): ours {ours_nme:.3f}, "
              f"ref {ref_nme:.3f}")
        for copies in args.memory_copies:
            result = measure_memory(manifest, work, args, copies)
            print(f"peak memory of a shard job with {copies * args.videos} videos "
                  f"({result['crops']} crops): {result['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
