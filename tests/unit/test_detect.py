"""`daml detect` without a trained run: the command line, model files it refuses, inputs, batching.

Scoring real videos against the evaluate stage is tested on the tiny run
(tests/workflow/test_detect_workflow.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from daml import cli
from daml.config import schema_defaults
from daml.detect import DetectSettings, load_scorer, video_inputs
from daml.errors import DamlError
from daml.evaluate import predict
from daml.methods import CONV4, Backbone
from daml.models import build_model, load_model

DAML = Path(sys.executable).with_name("daml")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(DAML), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def model_file(path: Path, preprocessing=True, **extra) -> Path:
    model = build_model(Backbone(CONV4, 32), seed=0)
    payload = {"state_dict": model.state_dict(), "image_size": 32,
               "backbone": Backbone(CONV4, 32).as_dict(), "method": "daml", "seed": 0, **extra}
    if preprocessing:
        defaults = schema_defaults(Path(__file__).parents[2] / "workflow/schemas/config.schema.yaml")
        payload["preprocessing"] = {"frames": defaults["frames"],
                                    "faces": {k: v for k, v in defaults["faces"].items()
                                              if k != "shards"}}
    torch.save(payload, path)
    return path


def test_help_answers_and_names_the_exit_statuses(tmp_path):
    result = run("detect", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "--model" in result.stdout and "Exit status" in result.stdout
    assert run("--help", cwd=tmp_path).returncode == 0


def test_a_missing_model_stops_with_status_2_and_no_traceback(tmp_path):
    result = run("detect", str(tmp_path), "--model", str(tmp_path / "none.pt"), cwd=tmp_path)
    assert result.returncode == 2
    assert "none.pt: model file missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "videos.csv").exists()


def test_a_model_file_without_its_preprocessing_record_asks_for_retraining(tmp_path):
    model = model_file(tmp_path / "old.pt", preprocessing=False)
    (tmp_path / "clip.mp4").write_bytes(b"")
    code = cli.main(["detect", str(tmp_path / "clip.mp4"), "--model", str(model), "--quiet",
                     "--out", str(tmp_path)])
    assert code == cli.UNUSABLE
    assert not (tmp_path / "videos.csv").exists()


def test_a_model_trained_on_imported_faces_is_refused(tmp_path):
    model = model_file(tmp_path / "m.pt")
    payload = torch.load(model, weights_only=False)
    payload["preprocessing"]["imported"] = "deepfakebench"
    torch.save(payload, model)
    with pytest.raises(DamlError, match="imported from deepfakebench"):
        load_scorer(model, DetectSettings())


def test_an_empty_folder_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = cli.main(["detect", str(tmp_path / "empty"), "--model",
                     str(model_file(tmp_path / "m.pt")), "--quiet", "--out", str(tmp_path)])
    assert code == cli.UNUSABLE
    assert "no videos to score" in capsys.readouterr().err


def test_unreadable_videos_alone_give_status_1_and_reason_rows(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    code = cli.main(["detect", str(tmp_path / "empty.mp4"), "--model",
                     str(model_file(tmp_path / "m.pt")), "--quiet", "--out", str(tmp_path / "o")])
    assert code == cli.SOME_FAILED
    table = (tmp_path / "o/videos.csv").read_text()
    assert "empty.mp4" in table and "empty file (0 bytes)" in table


def test_models_pt_entries_are_chosen_by_key(tmp_path):
    model = build_model(Backbone(CONV4, 32), seed=1)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"image_size": 32, "backbone": Backbone(CONV4, 32).as_dict(), "trained": "x",
                "preprocessing": None, "models": {
                    "t/shots5/episode0": {"state_dict": weights, "adapt": {"shots": 5}},
                    "t/shots5/episode1": {"adapt": {"shots": 5}}}}, tmp_path / "models.pt")
    loaded, payload = load_model(tmp_path / "models.pt")  # the one entry with weights
    assert payload["adapted"] == "t/shots5/episode0" and payload["adapt"] == {"shots": 5}
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in weights.items())
    with pytest.raises(DamlError, match="no fine-tuned weights under 't/shots5/episode1'"):
        load_model(tmp_path / "models.pt", adapted="t/shots5/episode1")
    with pytest.raises(DamlError, match="holds one model"):
        load_model(model_file(tmp_path / "m.pt"), adapted="t/shots5/episode0")


def test_folders_give_their_videos_by_relative_name_and_files_are_always_tried(tmp_path):
    (tmp_path / "a/b").mkdir(parents=True)
    for name in ("a/x.mp4", "a/b/y.MOV", "a/notes.txt", "a/.hidden/z.mp4", "c.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "d/x.mp4").parent.mkdir()
    (tmp_path / "d/x.mp4").write_bytes(b"")
    found = video_inputs([tmp_path / "a", tmp_path / "a/notes.txt", tmp_path / "d"])
    assert [name for name, _ in found] == ["b/y.MOV", "x.mp4", "notes.txt", "x.mp4#2"]


def test_a_face_s_probability_does_not_depend_on_its_batch():
    model = build_model(Backbone(CONV4, 32), seed=0).eval()
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (150, 32, 32, 3), np.uint8))
    whole = predict(model, images, 64, torch.device("cpu"))
    for size in (1, 7, 8):
        parts = np.concatenate([predict(model, images[i:i + size], 64, torch.device("cpu"))
                                for i in range(0, len(images), size)])
        assert np.array_equal(parts, whole), size
