"""`daml detect` and the `detect` target on the tiny run's models and the embedded benchmark's videos.

The scores must be the evaluate stage's for the same frames of the same videos, bit for bit on
the CPU: the command and the stage share the frame sampling, the face alignment and `predict`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from media import encode
from snakemake_runs import TINY_CONFIG, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.timeout(1800)]

DAML = Path(sys.executable).with_name("daml")  # the console script of this environment
MODEL = "results/train/ffpp-c23/daml/seed0/model.pt"
MODELS = "results/evaluate/ffpp-c23/ffpp-c23/daml/seed0/models.pt"
PREDICTIONS = "results/evaluate/ffpp-c23/ffpp-c23/daml/seed0/predictions.csv"
FOLDERS = ("manipulated_sequences/Deepfakes/c23/videos", "original_sequences/youtube/c23/videos")


def detect(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(DAML), "detect", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})


def evaluated(tiny_run: Path, shots: int, episode: int) -> pd.DataFrame:
    """The evaluate stage's probabilities of the FF++ c23 test faces, with each face's video path."""
    predictions = pd.read_csv(tiny_run / PREDICTIONS)
    predictions = predictions[(predictions.target == "ffpp-c23") & (predictions.shots == shots)
                              & (predictions.episode == episode)]
    manifest = pd.read_csv(tiny_run / "results/data/ffpp/manifest.csv", dtype=str,
                           keep_default_na=False)
    return predictions.merge(manifest[["key", "path"]], on="key")


def scored(out: Path) -> pd.DataFrame:
    videos = pd.read_csv(out / "videos.csv")
    frames = pd.read_csv(out / "frames.csv").merge(videos[["video", "path"]], on="video")
    frames["path"] = [os.path.abspath(p) for p in frames["path"]]
    return frames


@pytest.fixture(scope="module")
def detected(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("detect")
    videos = [str(tiny_run / "results/synthetic/ffpp" / folder) for folder in FOLDERS]
    result = detect(*videos, "--model", str(tiny_run / MODEL), "--plot", cwd=out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "40 of 40 videos scored" in result.stdout
    return out


def test_scores_equal_the_evaluate_stage_exactly(tiny_run, detected):
    ours = scored(detected)
    stage = evaluated(tiny_run, shots=0, episode=0)
    stage = stage[stage.technique.isin(["Deepfakes", "real"])]
    assert stage.video.nunique() >= 4
    both = stage.merge(ours, on=["path", "frame"], suffixes=("_stage", "_detect"))
    assert len(both) == len(stage)  # every test face of these videos was found again
    assert (both.prob_stage == both.prob_detect).all(), both[both.prob_stage != both.prob_detect]
    # the video score is the tables' video level: the mean frame probability
    videos = pd.read_csv(detected / "videos.csv")
    means = both.groupby("path").prob_stage.mean()
    for video in videos.itertuples():
        if os.path.abspath(video.path) in means.index:
            assert video.score == means[os.path.abspath(video.path)]
            assert video.label == ("fake" if video.score >= 0.5 else "real")


def test_outputs_and_picture(detected):
    videos = pd.read_csv(detected / "videos.csv")
    assert list(videos.columns) == ["video", "path", "status", "reason", "frames", "faces",
                                    "score", "label"]
    assert (videos.status == "scored").all() and (videos.frames == 8).all()
    frames = pd.read_csv(detected / "frames.csv")
    assert len(frames) == videos.frames.sum()
    assert frames.time.between(0, 1).all()  # 8 frames at 25 fps
    record = json.loads((detected / "detections.json").read_text())
    assert record["model"]["method"] == "daml" and record["model"]["seed"] == 0
    assert record["model"]["preprocessing"]["faces"]["crop_size"] == 48  # the tiny config's
    assert [v["video"] for v in record["videos"]] == videos.video.tolist()
    assert len(record["videos"][0]["frames"]) == 8
    import matplotlib.image

    plots = sorted((detected / "plots").glob("*.png"))
    assert len(plots) == len(videos)
    picture = matplotlib.image.imread(plots[0])
    assert picture.shape[0] > 300 and picture.shape[1] > 600
    assert picture[..., :3].std() > 0.05  # not blank


def test_a_fine_tuned_model_scores_as_the_evaluate_stage(tiny_run, tmp_path):
    videos = str(tiny_run / "results/synthetic/ffpp" / FOLDERS[1])
    # evaluate.save_weights: first keeps episode 0's weights only, so that one is the default
    result = detect(videos, "--model", str(tiny_run / MODELS), "--adapted",
                    "ffpp-c23/shots4/episode1", "--quiet", cwd=tmp_path)
    assert result.returncode == 2 and "no fine-tuned weights under" in result.stderr
    assert "Traceback" not in result.stderr
    result = detect(videos, "--model", str(tiny_run / MODELS), "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    stage = evaluated(tiny_run, shots=4, episode=0)
    stage = stage[stage.technique == "real"]
    both = stage.merge(scored(tmp_path / "out"), on=["path", "frame"], suffixes=("_stage", "_detect"))
    assert len(both) == len(stage) > 0
    assert (both.prob_stage == both.prob_detect).all()
    assert json.loads((tmp_path / "out/detections.json").read_text())["model"]["adapted"] == (
        "ffpp-c23/shots4/episode0")


def test_bad_files_get_reason_rows_and_a_failing_status(tiny_run, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    good = sorted((tiny_run / "results/synthetic/ffpp" / FOLDERS[1]).glob("*.mp4"))[0]
    shutil.copy(good, folder / "good.mp4")
    data = good.read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 3])
    (folder / "notes.mp4").write_text("not a video at all\n" * 50)
    rng = np.random.default_rng(0)
    encode(folder / "faceless.mp4", [rng.integers(0, 255, (96, 128, 3), np.uint8) for _ in range(8)])
    (folder / "readme.txt").write_text("a folder's other files are not videos")
    result = detect(str(folder), str(tmp_path / "missing.mp4"), "--model", str(tiny_run / MODEL),
                    "--plot", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "1 of 5 videos scored" in result.stdout
    videos = pd.read_csv(tmp_path / "videos.csv", keep_default_na=False).set_index("video")
    assert set(videos.index) == {"good.mp4", "cut.mp4", "notes.mp4", "faceless.mp4", "missing.mp4"}
    assert videos.loc["good.mp4", "status"] == "scored"
    reasons = videos.reason
    assert reasons["missing.mp4"] == "missing file"
    assert reasons["notes.mp4"].startswith("not a video")
    assert "truncated" in reasons["cut.mp4"] or "corrupt" in reasons["cut.mp4"]
    assert reasons["faceless.mp4"] == "no face in any of the 8 sampled frames"
    assert (videos.drop(index="good.mp4").status == "failed").all()
    assert [p.name for p in (tmp_path / "plots").glob("*.png")] == ["good.mp4.png"]


def test_the_detect_target_gives_the_command_s_results(tiny_run, detected, tmp_path):
    # a user's own model file, outside the workflow's results: Snakemake reads it as it is
    shutil.copy(tiny_run / MODEL, tmp_path / "model.pt")
    overlay = tmp_path / "detect.yaml"
    overlay.write_text(yaml.safe_dump({"detect": {
        "videos": str(tiny_run / "results/synthetic/ffpp" / FOLDERS[0]),
        "model": str(tmp_path / "model.pt"), "plot": False}}))
    work = tmp_path / "work"
    snakemake(work, "--cores", "1", "detect", configs=(TINY_CONFIG, overlay))
    ours = pd.read_csv(work / "results/detect/frames.csv")
    command = pd.read_csv(detected / "frames.csv")
    command = command[~command.video.str.fullmatch(r"\d{3}\.mp4")]  # the Deepfakes folder's
    assert len(ours) == len(command) > 0
    assert (ours.prob.to_numpy() == command.prob.to_numpy()).all()
    assert not (work / "results/train").exists()  # nothing else was built


def test_the_detect_target_without_videos_says_what_to_set(tmp_path):
    result = snakemake(tmp_path, "-n", "detect", check=False)
    assert result.returncode != 0
    assert "detect.videos" in result.stdout + result.stderr
