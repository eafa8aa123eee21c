"""A dataset tree in DeepfakeBench's preprocessed layout, written as its own tools write it.

`preprocessing/preprocess.py` keeps per video `<folder>/frames/<video>/<NNN>.png` (aligned
crops written by cv2.imwrite from BGR) and `<folder>/landmarks/<video>/<NNN>.npy` (81 dlib
points); `preprocessing/rearrange.py` writes the dataset JSON with its quirks: Celeb-DF's
train holds every video and its val copies test, DFDC's val copies train and ends as one
`{label, frames}` entry, FF++ fakes carry a `masks` list. The crops are drawn faces of the
embedded benchmark (`daml.data.synthetic.face`); fakes are blurred and tinted per technique
so that a detector has something to learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from daml.data.synthetic.face import Identity, Motion, render_face

SIDE = 64  # their crops are 256 px; smaller keeps the tests fast, the reader takes any size
TECHNIQUE_LABELS = {"Deepfakes": "FF-DF", "Face2Face": "FF-F2F", "FaceSwap": "FF-FS",
                    "NeuralTextures": "FF-NT"}
TINTS = {"FF-DF": (30, 0, 0), "FF-F2F": (0, 30, 0), "FF-FS": (0, 0, 30), "FF-NT": (20, 20, 0),
         "CelebDFv2_fake": (25, 0, 25), "DFDC_Fake": (0, 25, 25)}


def face_crop(seed: int, label: str, side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """An RGB face crop (side, side, 3) and its 5 points; fakes blurred and tinted."""
    rng = np.random.default_rng(seed)
    person = Identity.sample(rng)
    motion = Motion(cx=0.5, cy=0.5, size=0.34, roll=float(rng.uniform(-6, 6)),
                    yaw=float(rng.uniform(-0.3, 0.3)), blink=0.0,
                    mouth_open=float(rng.uniform(0, 1)))
    image, points = render_face(person, motion, side, side)
    if label in TINTS:
        image = cv2.GaussianBlur(image, (5, 5), 0)
        image = np.clip(image.astype(np.int16) + np.array(TINTS[label], np.int16), 0, 255)
    return image.astype(np.uint8), points


def points81(five: np.ndarray) -> np.ndarray:
    """81 dlib-style points whose eyes (36-41, 42-47), nose tip (30) and mouth corners (48, 54)
    give `five` back; the others lie on a ring (jaw, brows, forehead are not ours)."""
    points = np.zeros((81, 2), np.float64)
    angles = np.linspace(0, 2 * np.pi, 81, endpoint=False)
    centre = five.mean(0)
    points[:] = centre + 20 * np.stack([np.cos(angles), np.sin(angles)], 1)
    ring = 2 * np.stack([np.cos(angles[:6] * 81 / 6), np.sin(angles[:6] * 81 / 6)], 1)
    points[36:42] = five[0] + ring  # a symmetric ring: its mean is the eye centre
    points[42:48] = five[1] + ring
    points[30], points[48], points[54] = five[2], five[3], five[4]
    return points


def write_video(folder: Path, video: str, label: str, seed: int, n_frames: int = 4,
                side: int = SIDE, landmarks: bool = True) -> list[Path]:
    """One video's crops (and landmarks) under `folder/frames/<video>/`, as preprocess.py."""
    numbers = np.linspace(0, 299, n_frames).astype(int)  # fixed_num_frames over 300 frames
    paths = []
    for k, number in enumerate(numbers):
        image, five = face_crop(seed * 100 + k, label, side)
        png = folder / "frames" / video / f"{number:03d}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(png), image[..., ::-1])  # their crops are BGR arrays
        if landmarks:
            npy = folder / "landmarks" / video / f"{number:03d}.npy"
            npy.parent.mkdir(parents=True, exist_ok=True)
            np.save(npy, np.rint(points81(five)).astype(np.int64))  # dlib gives integers
        paths.append(png)
    return paths


def _style(paths: list[Path], rgb: Path, style: str, workdir: Path | None) -> list[str]:
    """Frame paths as a JSON holds them: absolute (rearrange.py from an absolute root),
    relative to rgb_dir with backslashes (a JSON made on Windows), or `./` from `workdir`."""
    if style == "absolute":
        return [str(p) for p in paths]
    if style == "rgb_dir":
        return [str(p.relative_to(rgb)).replace("/", "\\") for p in paths]
    return ["./" + str(p.relative_to(workdir)) for p in paths]


def make_ffpp(rgb: Path, pairs=None, compressions=("c23", "c40"), n_frames=4,
              style="absolute", workdir=None) -> Path:
    """FaceForensics++ with FF-real and the four techniques; returns FaceForensics++.json."""
    pairs = pairs or {"train": [("000", "001"), ("002", "003")], "val": [("004", "005")],
                      "test": [("006", "007")]}
    base = rgb / "FaceForensics++"
    labels = {"FF-real": {s: {c: {} for c in compressions} for s in pairs}}
    labels |= {name: {s: {c: {} for c in compressions} for s in pairs}
               for name in TECHNIQUE_LABELS.values()}
    for split, split_pairs in pairs.items():
        for a, b in split_pairs:
            for c in compressions:
                for i, video in enumerate((a, b)):
                    folder = base / "original_sequences/youtube" / c
                    paths = write_video(folder, video, "FF-real", int(video) * 7 + i, n_frames)
                    labels["FF-real"][split][c][video] = {
                        "label": "FF-real", "frames": _style(paths, rgb, style, workdir)}
                for technique, name in TECHNIQUE_LABELS.items():
                    for t, s in ((a, b), (b, a)):
                        folder = base / "manipulated_sequences" / technique / c
                        video = f"{t}_{s}"
                        paths = write_video(folder, video, name, int(t) * 13 + int(s), n_frames)
                        labels[name][split][c][video] = {
                            "label": name, "frames": _style(paths, rgb, style, workdir),
                            "masks": []}
    return _dump(rgb, "FaceForensics++", labels)


def make_celebdf(rgb: Path, n_ids=4, test_ids=(0,), n_frames=4, style="absolute",
                 workdir=None) -> Path:
    """Celeb-DF v2: train holds every video, test the listed ones, val a copy of test."""
    base = rgb / "Celeb-DF-v2"
    labels = {name: {"train": {}, "val": {}, "test": {}}
              for name in ("CelebDFv2_real", "CelebDFv2_fake")}
    lines = []
    videos = []
    for i in range(n_ids):
        videos += [("Celeb-real", f"id{i}_{k:04d}", "CelebDFv2_real") for k in range(2)]
        videos += [("Celeb-synthesis", f"id{i}_id{(i + 1) % n_ids}_{k:04d}", "CelebDFv2_fake")
                   for k in range(2)]
    videos += [("YouTube-real", f"{k:05d}", "CelebDFv2_real") for k in range(2)]
    for number, (folder, video, name) in enumerate(videos):
        paths = write_video(base / folder, video, name, 500 + number, n_frames)
        entry = {"label": name, "frames": _style(paths, rgb, style, workdir)}
        labels[name]["train"][video] = entry
        listed = video.startswith(tuple(f"id{i}_" for i in test_ids)) or video == "00000"
        if listed:
            labels[name]["test"][video] = entry
            labels[name]["val"][video] = entry
            lines.append(f"{0 if name.endswith('fake') else 1} {folder}/{video}.mp4")
    (base / "List_of_testing_videos.txt").write_text("\n".join(lines) + "\n")
    return _dump(rgb, "Celeb-DF-v2", labels)


def make_dfdc(rgb: Path, n_reals=4, n_frames=4, style="absolute", workdir=None) -> Path:
    """DFDC: two training parts with metadata.json and a test folder; val as rearrange.py
    leaves it (train's videos plus the last test video's {label, frames})."""
    base = rgb / "DFDC"
    labels = {name: {"train": {}, "val": {}, "test": {}} for name in ("DFDC_Real", "DFDC_Fake")}
    for r in range(n_reals):
        part = base / "train" / f"dfdc_train_part_{r % 2}"
        metadata = json.loads((part / "metadata.json").read_text()) if (
            part / "metadata.json").is_file() else {}
        for video, name, original in ((f"real{r}", "DFDC_Real", None),
                                      (f"fake{r}", "DFDC_Fake", f"real{r}.mp4")):
            paths = write_video(part, video, name, 900 + 2 * r + (original is not None), n_frames)
            entry = {"label": name, "frames": _style(paths, rgb, style, workdir)}
            labels[name]["train"][video] = entry
            labels[name]["val"][video] = entry
            metadata[f"{video}.mp4"] = {"label": "FAKE" if original else "REAL", "split": "train",
                                        **({"original": original} if original else {})}
        part.mkdir(parents=True, exist_ok=True)
        (part / "metadata.json").write_text(json.dumps(metadata))
    rows, last = [], {}
    for t in range(4):
        name = "DFDC_Fake" if t % 2 else "DFDC_Real"
        paths = write_video(base / "test", f"test{t}", name, 950 + t, n_frames)
        last[name] = {"label": name, "frames": _style(paths, rgb, style, workdir)}
        labels[name]["test"][f"test{t}"] = last[name]
        rows.append(f"test{t}.mp4,{t % 2}")
    (base / "test/labels.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    for name in labels:  # rearrange.py: `...[label]['val'] = {'label': ..., 'frames': ...}`
        labels[name]["val"].update(last[name])
    return _dump(rgb, "DFDC", labels)


def _dump(rgb: Path, name: str, labels: dict) -> Path:
    path = rgb.parent / "dataset_json" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({name: labels}))
    return path


BUILDERS = {"ffpp": make_ffpp, "celebdf": make_celebdf, "dfdc": make_dfdc}
