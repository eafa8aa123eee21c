"""Score videos with a trained model: `daml detect` and the workflow's `detect` target.

Description:
    A user's video meets exactly the preprocessing of the faces its model was trained on: the
    model file carries the `frames` and `faces` settings of the run that made it
    (`preprocessing` in model.pt, `daml.train`), so frames are sampled by
    `daml.frames.read_video_frames`, faces found and aligned by `daml.faces.align_frames`,
    resized by `daml.facedata.resize` and scored by `daml.evaluate.predict`, the functions
    the workflow itself runs, with nothing retyped. The video score is the mean frame
    probability (`daml.metrics.video_scores`, as the tables' video level), and a video is
    called fake at `daml.metrics.FAKE_AT`, the threshold of the tables' ACC.

    Outputs, in one folder (docs/architecture.md, "Detect"):
    - `videos.csv`: one row per input video: `video,path,status,reason,frames,faces,score,
      label` (`status` scored or failed; a failed video's reason: missing file, not a video,
      corrupt or truncated file, no face in any sampled frame);
    - `frames.csv`: one row per sampled frame of a scored video: `video,frame,time,prob,x1,y1,
      x2,y2,face_score,how` (`how` detected, fallback or no face; a frame without a face has no
      probability);
    - `detections.json`: the model's record and every video with its frames;
    - with `plot`, `plots/<video>.png`: the aligned face crops with their probabilities, and
      the probability against time.

    A bad video is a failed row, never a stop; a bad model file or option is a `DamlError`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from daml.config import settings_from
from daml.errors import DamlError
from daml.evaluate import predict
from daml.facedata import resize
from daml.faces import Detector, FaceSettings, align_frames
from daml.frames import FrameSettings, UnreadableInput, frame_rate, read_video_frames
from daml.io import write_csv, write_json
from daml.metrics import FAKE_AT, video_scores
from daml.models import load_model, model_backbone
from daml.runtime import runtime, runtime_record

log = logging.getLogger(__name__)

# what a folder argument contributes; a file named on its own is always tried
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                  ".flv", ".3gp", ".ts")
VIDEO_COLUMNS = ["video", "path", "status", "reason", "frames", "faces", "score", "label"]
FRAME_COLUMNS = ["video", "frame", "time", "prob", "x1", "y1", "x2", "y2", "face_score", "how"]
OUTPUTS = {"videos": "videos.csv", "frames": "frames.csv", "json": "detections.json",
           "plots": "plots"}


@dataclass(frozen=True)
class DetectSettings:
    """How scoring runs (config section `detect`, or `daml detect`'s options).

    Arguments:
        device (str): "auto", "cpu", "cuda" or "cuda:N".
        precision (str): "fp32", "bf16" or "auto" (as the evaluate stage).
        batch_size (int): faces per forward pass.
        threads (int): CPU threads of torch and of the face detector (the workflow's jobs
            use 1; 0 keeps torch's default and gives the detector one).
    """

    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 64
    threads: int = 1


@dataclass
class Scorer:
    """A loaded model and the preprocessing its training faces had."""

    model: torch.nn.Module
    image_size: int
    frames: FrameSettings
    faces: FaceSettings
    device: torch.device
    dtype: torch.dtype | None
    batch_size: int
    record: dict


@dataclass
class VideoResult:
    """One input's outcome: its frames' rows and crops, or the reason it failed."""

    video: str
    path: Path
    reason: str = ""
    frames: list[dict] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    sampled: int = 0

    @property
    def scored(self) -> bool:
        return not self.reason


def load_scorer(model_path: str | Path, settings: DetectSettings,
                adapted: str | None = None) -> Scorer:
    """The model of a model.pt (or one fine-tuned model of a models.pt) ready to score.

    Raises:
        DamlError: the file is missing or unreadable, names no single fine-tuned model,
            predates the preprocessing record, or was trained on imported faces (DeepfakeBench),
            whose preprocessing cannot be repeated.
    """
    device, dtype = runtime(settings.device, settings.precision, settings.threads)
    model, payload = load_model(model_path, device, adapted)
    preprocessing = payload.get("preprocessing")
    if not preprocessing or "frames" not in preprocessing or "faces" not in preprocessing:
        raise DamlError(
            f"{model_path}: the file does not record how its training faces were made (its "
            "frames and faces settings), so a new video cannot be prepared the same way: "
            "it was written before model files carried them; rerun its training "
            "(snakemake --forcerun train_models) and use the new file"
        )
    if preprocessing.get("imported"):
        raise DamlError(
            f"{model_path}: its training faces were imported from {preprocessing['imported']}'s "
            "preprocessing (their detector, alignment and frame sampling), which daml detect "
            "cannot repeat on a new video; score with a model trained on faces this workflow "
            "made from videos"
        )
    record = {
        "path": str(model_path),
        **{key: payload.get(key) for key in ("method", "algorithm", "source", "seed")},
        "backbone": model_backbone(payload).as_dict(),
        "adapted": payload.get("adapted"),
        "trained": payload.get("trained"),
        "preprocessing": preprocessing,
        "runtime": runtime_record(device, dtype),
    }
    return Scorer(
        model, int(payload["image_size"]),
        _recorded(FrameSettings, preprocessing["frames"], model_path, "frames"),
        _recorded(FaceSettings, preprocessing["faces"], model_path, "faces"),
        device, dtype, settings.batch_size, record,
    )


def _recorded(cls, section: dict, model_path, name: str):
    """A settings dataclass from a model file's record; a field added to the settings since
    the file was written takes its default (such fields say how to run, never how faces look)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING}
    return settings_from(cls, {**defaults, **section}, f"{model_path}: preprocessing.{name}")


def video_inputs(paths: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """(name, path) of every video to score: files as given, folders searched recursively.

    A folder contributes its files with a video suffix (`VIDEO_SUFFIXES`), named by their
    path inside it; a named file is tried whatever its suffix, so that a wrong file gets a
    reason row rather than silence. Names made unique by a suffix `#2`, `#3`, ...
    """
    found: list[tuple[str, Path]] = []
    for given in map(Path, paths):
        if given.is_dir():
            videos = sorted(p for p in given.rglob("*")
                            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(given).parts))
            if not videos:
                log.warning("%s: no video files (%s) in this folder", given,
                            " ".join(VIDEO_SUFFIXES))
            found += [(p.relative_to(given).as_posix(), p) for p in videos]
        else:
            found.append((given.name, given))
    if not found:
        raise DamlError(f"no videos to score in {', '.join(map(str, paths))}: name video files "
                        f"or folders holding them ({' '.join(VIDEO_SUFFIXES)})")
    seen: dict[str, int] = {}
    unique = []
    for name, path in found:
        seen[name] = seen.get(name, 0) + 1
        unique.append((name if seen[name] == 1 else f"{name}#{seen[name]}", path))
    return unique


def score_video(name: str, path: Path, scorer: Scorer, detector: Detector) -> VideoResult:
    """Sample, detect, align and score one video as its model's training faces were made."""
    result = VideoResult(name, path)
    try:
        frames, indices, _ = read_video_frames(path, scorer.frames.per_video,
                                               scorer.frames.max_side)
        rate = frame_rate(path)
    except UnreadableInput as error:
        result.reason = error.reason
        return result
    result.sampled = len(indices)
    for frame, face in align_frames(frames, indices, detector, scorer.faces, sequence=False):
        row = {"video": name, "frame": frame,
               "time": round(frame / rate, 4) if rate else np.nan, "prob": np.nan,
               "x1": np.nan, "y1": np.nan, "x2": np.nan, "y2": np.nan, "face_score": np.nan,
               "how": "no face"}
        if face is not None:
            row.update(zip(("x1", "y1", "x2", "y2"), face.box.round(2).tolist()),
                       face_score=round(face.score, 5), how=face.how)
            result.crops.append(face.crop)
        result.frames.append(row)
    if not result.crops:
        result.reason = f"no face in any of the {result.sampled} sampled frames"
        return result
    images = resize(torch.from_numpy(np.stack(result.crops)), scorer.image_size)
    probs = iter(predict(scorer.model, images, scorer.batch_size, scorer.device, scorer.dtype))
    for row in result.frames:
        if row["how"] != "no face":
            row["prob"] = float(next(probs))
    return result


def detect_videos(inputs: Sequence[str | Path], model_path: str | Path, out_dir: str | Path,
                  settings: DetectSettings = DetectSettings(), adapted: str | None = None,
                  plot: bool = False, progress: bool = True) -> pd.DataFrame:
    """Score videos and write the outputs of the module docstring into `out_dir`.

    Returns:
        The `videos.csv` table (a failed video has status `failed` and its reason).
    """
    out_dir = Path(out_dir)
    scorer = load_scorer(model_path, settings, adapted)
    videos = video_inputs(inputs)
    faces = scorer.faces
    detector = Detector(faces.score_threshold, faces.detect_max_side, max(1, settings.threads),
                        faces.backend, faces.device)
    results = [score_video(name, path, scorer, detector)
               for name, path in tqdm(videos, desc="detect", unit="video", disable=not progress)]
    table, frames = _tables(results)
    write_csv(out_dir / OUTPUTS["videos"], table)
    write_csv(out_dir / OUTPUTS["frames"], frames)
    write_json(out_dir / OUTPUTS["json"], {
        "model": scorer.record,
        "fake_at": FAKE_AT,
        "videos": [
            {**video, "frames": frames[frames["video"] == video["video"]]
             .drop(columns="video").to_dict("records")}
            for video in table.to_dict("records")
        ],
    })
    if plot:
        from daml.detect_plot import plot_video  # matplotlib only when pictures are asked for

        for result, video in zip(results, table.to_dict("records")):
            if result.scored:
                plot_video(result, video["score"], out_dir / OUTPUTS["plots"]
                           / f"{_file_name(result.video)}.png")
    failed = table[table["status"] == "failed"]
    for video in failed.itertuples():
        log.warning("%s: not scored: %s", video.path, video.reason)
    log.info("%d of %d videos scored -> %s", len(table) - len(failed), len(table), out_dir)
    return table


def _tables(results: Sequence[VideoResult]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """videos.csv and frames.csv from the results, video scores as the tables make them."""
    frames = pd.DataFrame([row for r in results for row in r.frames], columns=FRAME_COLUMNS)
    faces = frames[frames["how"] != "no face"]
    scores = video_scores(faces["video"], np.zeros(len(faces), int), faces["prob"])
    score_of = dict(zip(scores["key"], scores["prob"]))
    rows = []
    for r in results:
        score = score_of.get(r.video, np.nan) if r.scored else np.nan
        label = "" if not r.scored else ("fake" if score >= FAKE_AT else "real")
        rows.append([r.video, str(r.path), "scored" if r.scored else "failed", r.reason,
                     r.sampled, len(r.crops), score, label])
    return pd.DataFrame(rows, columns=VIDEO_COLUMNS), frames


def _file_name(video: str) -> str:
    """A plot's file name for a video name (folders and odd characters flattened)."""
    return re.sub(r"[^A-Za-z0-9._#-]+", "_", video.replace("/", "__"))


__all__ = ["DetectSettings", "Scorer", "VideoResult", "VIDEO_SUFFIXES", "VIDEO_COLUMNS",
           "FRAME_COLUMNS", "OUTPUTS", "load_scorer", "video_inputs", "score_video",
           "detect_videos"]
