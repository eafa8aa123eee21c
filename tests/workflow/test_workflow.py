"""Real `snakemake` runs of this workflow on the tiny configuration (tests/workflow/config.yaml).

One complete run (`--cores 2`) is shared by most tests; a second run from scratch (`--cores 1`,
Tables 1 and 2) must give identical tables, metrics and training histories, which checks
determinism and parallel safety at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import pytest
import yaml

from snakemake_runs import REPO, TINY_CONFIG, job_counts, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.timeout(2400)]

TABLES = ("table1", "table2", "table3", "loto")


# The one-core run builds Tables 1 and 2 only (the ffpp-c23 models: both face-set kinds,
# training, evaluation with shots and without, the bootstrap comparisons), from scratch.
ONE_CORE_TABLES = ("table1", "table2")


@pytest.fixture(scope="session")
def tiny_run_one_core(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("tiny-cores1")
    snakemake(work, "--cores", "1", *ONE_CORE_TABLES)
    return work


def overlay(tmp_path: Path, name: str, content: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content))
    return path


# ------------------------------------------------------------------ static checks


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_formatted():
    files = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *map(str, files)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_job_counts(tmp_path):
    counts = job_counts(snakemake(tmp_path, "-n", "--cores", "1").stdout)
    # 3 sources (ffpp-c23, ffpp-c40-df, ffpp-c40-no-nt) x 2 seeds, each job every method
    assert counts["train_models"] == 6
    # one evaluation per source, target face set and seed, for every method, row and shot
    # count: c23 on ffpp-c23 and on celebdf (Table 2 and the shots figure), df on ffpp-c40
    # (two Table 3 rows), no-nt on ffpp-c40; x 2 seeds
    assert counts["evaluate_models"] == 8
    assert counts["generate_benchmark"] == counts["index_dataset"] == 4
    # face sets the tiny tables need: ffpp-c23 (2 shards), ffpp-c40 (1), celebdf (1)
    assert counts["align_faces"] == counts["extract_frames"] == 4
    assert counts["make_table"] == 4 and counts["plot_figure"] == 4 and counts["render_report"] == 1


def test_named_target_builds_only_what_it_needs(tmp_path):
    counts = job_counts(snakemake(tmp_path, "-n", "--cores", "1", "table1").stdout)
    assert counts["train_models"] == 2  # ffpp-c23 only, 2 seeds
    assert counts["evaluate_models"] == 2
    assert "render_report" not in counts
    assert counts["align_faces"] == 2  # the two ffpp-c23 shards, no other face set
    assert counts["generate_benchmark"] == 1


# ------------------------------------------------------------------ bad configuration


@pytest.mark.parametrize(
    "content, message",
    [
        ({"faces": {"crop": 3}}, "faces: Additional properties are not allowed ('crop' was unexpected)"),
        ({"adapt": {"steps": 0}}, "adapt.steps: 0 is less than the minimum of 1"),
        ({"train": {"iterations": 0}}, "train.iterations: 0 is less than the minimum of 1"),
        ({"methods": ["daml", "reptile"]}, "methods: 'reptile' is not one of ['daml', 'maml', 'erm'], so method_settings.reptile.algorithm"),
        ({"datasets": {"roots": {"dfdc": "/no/such/dfdc"}}}, "datasets.roots.dfdc: folder '/no/such/dfdc' does not exist"),
        ({"datasets": {"deepfakebench": {"celebdf": {"root": "/no/such/rgb", "json": "/no/such.json"}}}},
         "datasets.deepfakebench.celebdf.root: folder '/no/such/rgb' does not exist"),
        ({"tables": {"table2": [{"source": "ffpp-c23", "target": "celebdf", "shots": -1}]}}, "tables.table2.0.shots: -1"),
        ({"tables": {"table1": [{"source": "ffpp", "target": "ffpp-c23"}]}}, "tables.table1[0].source: 'ffpp' is not defined"),
    ],
)
def test_bad_config_stops_with_a_message_naming_the_key(tmp_path, content, message):
    extra = overlay(tmp_path, "bad.yaml", content)
    result = snakemake(tmp_path, "-n", "--cores", "1", configs=(TINY_CONFIG, extra), check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------ a complete run


def test_run_produces_every_table_figure_and_the_report(tiny_run):
    for table in TABLES:
        for ext in ("csv", "md", "tex"):
            assert (tiny_run / f"results/tables/{table}.{ext}").stat().st_size > 0
    for figure in ("figure2", "figure3", "figure_shots", "forest"):
        assert (tiny_run / f"results/figures/{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tiny_run / "results/report/index.html").read_text()
    assert 'id="synthetic-banner"' in html  # synthetic data is said so at the top
    assert "DAML (paper)" in html and "Cross AVG" in html
    assert 'id="forest"' in html and "<td>training precision</td>" in html
    # every measured number and comparison of a real run carries its interval and its noise
    table = pd.read_csv(tiny_run / "results/tables/table3.csv")
    ours = table[table["kind"].isin(["measured", "zero-shot", "comparison"])]
    assert ours["ci_low"].notna().all() and (ours["ci_low"] <= ours["value"]).all()
    tuned = ours[ours["kind"] != "zero-shot"]
    assert set(tuned["noise"]) == {"seeds+episodes+test clusters"} and (tuned["n_episodes"] == 2).all()
    assert not list((tiny_run / "results").glob("frames/*/*")), "temporary frames were not removed"


def test_pipeline_learns_in_domain(tiny_run):
    """Every method, fine-tuned as Table 1 reports it, separates real from fake on FF++ test videos.

    (That cross-domain is harder than in-domain is a property of the default configuration's
    larger data; the README reports it from a default run. The tiny data is too small for it.)
    """

    def auc(method, seed):
        path = tiny_run / f"results/evaluate/ffpp-c23/ffpp-c23/{method}/seed{seed}/metrics.json"
        job = json.loads(path.read_text().replace("NaN", "null"))
        [tuned] = [r for r in job["evaluations"] if r["shots"] == 4]
        return tuned["frame"]["auc"]

    for method in ("daml", "maml", "erm"):
        scores = [auc(method, seed) for seed in (0, 1)]
        assert sum(scores) / 2 > 0.65, (method, scores)


def test_faces_were_found_and_skips_counted(tiny_run):
    index = pd.concat(pd.read_csv(p) for p in (tiny_run / "results/faces/ffpp-c23").glob("shard*[0-9].csv"))
    manifest = pd.read_csv(tiny_run / "results/data/ffpp/manifest.csv", dtype={"video": str})
    videos = manifest[manifest.compression == "c23"]
    assert len(index) >= 0.9 * 8 * len(videos)  # 8 frames per video, nearly all with a face
    assert set(index.label) == {0, 1}


def test_rerun_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, "-n", "--cores", "1")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_one_core_gives_identical_results(tiny_run, tiny_run_one_core):
    for table in ONE_CORE_TABLES:
        a = (tiny_run / f"results/tables/{table}.csv").read_text()
        b = (tiny_run_one_core / f"results/tables/{table}.csv").read_text()
        assert a == b, table
    assert len(sorted((tiny_run / "results/evaluate").rglob("metrics.json"))) == 24
    metrics = sorted((tiny_run_one_core / "results/evaluate").rglob("metrics.json"))
    assert len(metrics) == 12  # ffpp-c23 and celebdf, 3 methods x 2 seeds
    for path in metrics:
        twin = tiny_run / path.relative_to(tiny_run_one_core)
        assert path.read_text() == twin.read_text(), path
    for path in (tiny_run_one_core / "results/train").rglob("history.csv"):
        assert path.read_text() == (tiny_run / path.relative_to(tiny_run_one_core)).read_text()


def test_different_seeds_differ(tiny_run):
    base = tiny_run / "results/evaluate/ffpp-c23/ffpp-c23/daml"
    a = pd.read_csv(base / "seed0/predictions.csv")
    b = pd.read_csv(base / "seed1/predictions.csv")
    assert not a.prob.equals(b.prob)


# ------------------------------------------------------------------ interruption


def copy_preprocessed(src: Path, dst: Path) -> None:
    """Reuse a finished run's data and faces (timestamps kept) so only training runs again."""
    for part in ("synthetic", "data", "faces"):
        shutil.copytree(src / "results" / part, dst / "results" / part, copy_function=shutil.copy2)


def test_killed_training_resumes_to_the_same_model(tiny_run, tmp_path):
    import torch

    # one method: the job trains each configured method in turn
    longer = overlay(tmp_path, "longer.yaml", {"methods": ["daml"],
                                               "train": {"iterations": 120, "checkpoint_every": 20}})
    configs = (TINY_CONFIG, longer)
    target = "results/train/ffpp-c23/daml/seed0/model.pt"

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for work in (straight, killed):
        copy_preprocessed(tiny_run, work)
    snakemake(straight, "--cores", "1", target, configs=configs)

    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(killed), "--configfile", str(REPO / "config.yaml"), *map(str, configs),
        "--cores", "1", target,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = killed / "results/train/ffpp-c23/daml/seed0/checkpoint.pt"
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert not (killed / target).exists()
    assert checkpoint.exists()

    # what a user does after a killed run: release Snakemake's lock, rerun
    snakemake(killed, "--unlock", configs=configs)
    snakemake(killed, "--cores", "1", "--rerun-incomplete", target, configs=configs)
    train_log = (killed / "results/logs/train_models/ffpp-c23/seed0.log").read_text()
    assert "resum" in train_log.lower(), "the rerun did not resume from the checkpoint"

    a = torch.load(straight / target, weights_only=False)["state_dict"]
    b = torch.load(killed / target, weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for name in ("history.csv", "validation.csv"):
        assert (straight / target).with_name(name).read_text() == (killed / target).with_name(name).read_text()


# ------------------------------------------------------------------ bad inputs in a real-root layout


def test_broken_videos_are_skipped_and_counted(tiny_run, tmp_path):
    root = tmp_path / "ffpp"
    shutil.copytree(tiny_run / "results/synthetic/ffpp", root)
    videos = sorted((root / "original_sequences/youtube/c23/videos").glob("*.mp4"))
    videos[0].write_bytes(b"")  # zero bytes
    data = videos[1].read_bytes()
    videos[1].write_bytes(data[: len(data) // 3])  # truncated
    videos[2].write_bytes(b"this is not a video at all" * 100)  # not a video
    extra = overlay(tmp_path, "real.yaml", {"datasets": {"roots": {"ffpp": str(root)}}})
    work = tmp_path / "work"
    targets = [f"results/faces/ffpp-c23/shard{i:03d}.skips.csv" for i in range(2)]
    snakemake(work, "--cores", "2", *targets, configs=(TINY_CONFIG, extra))
    skips = pd.concat(pd.read_csv(work / t, dtype={"key": str}) for t in targets)
    whole = skips[skips.frame == -1]
    for video in videos[:3]:
        assert whole.key.str.endswith(f"/real/{video.stem}").any(), (video.name, skips)
    assert len(whole) >= 3
    assert not (work / "results/synthetic").exists()  # a user's root is read, never generated


def test_killed_face_shard_reruns_cleanly(tiny_run, tmp_path):
    """Kill Snakemake while a face shard is being made; the rerun gives the same shard."""
    import numpy as np

    work = tmp_path / "work"
    for part in ("synthetic", "data"):
        shutil.copytree(tiny_run / "results" / part, work / "results" / part, copy_function=shutil.copy2)
    shard = "results/faces/ffpp-c23/shard000"
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(work), "--configfile", str(REPO / "config.yaml"), str(TINY_CONFIG),
        "--cores", "2", f"{shard}.csv",  # as the reference run
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    frames = work / "results/frames/ffpp-c23/shard000"
    deadline = time.monotonic() + 300
    while not frames.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the shard finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)  # frames extracted, faces being aligned
    process.wait(timeout=60)

    snakemake(work, "--unlock")
    snakemake(work, "--cores", "2", "--rerun-incomplete", f"{shard}.csv")
    for suffix in (".csv", ".skips.csv"):
        assert (work / f"{shard}{suffix}").read_text() == (tiny_run / f"{shard}{suffix}").read_text()
    with np.load(work / f"{shard}.npz") as again, np.load(tiny_run / f"{shard}.npz") as first:
        assert np.array_equal(again["crops"], first["crops"])
    # nothing under an output's name was half-written, and the rerun removed the killed
    # attempt's hidden temporaries (".shard000.npz.XXXXXXXX.npz")
    left = sorted(p.name for p in (work / "results/faces/ffpp-c23").iterdir())
    assert left == ["shard000.csv", "shard000.npz", "shard000.skips.csv"]


# ------------------------------------------------------------------ empty splits: clear stops


def corrupt_split(root: Path, split: str, compression: str) -> int:
    """Overwrite every FF++ video of one split and compression with bytes that decode to nothing."""
    pairs = json.loads((root / "splits" / f"{split}.json").read_text())
    names = {i for pair in pairs for i in pair} | {f"{a}_{b}" for a, b in pairs} | {f"{b}_{a}" for a, b in pairs}
    hit = 0
    for path in root.rglob(f"{compression}/videos/*.mp4"):
        if path.stem in names:
            path.write_bytes(b"not a video" * 50)
            hit += 1
    return hit


def test_empty_val_and_test_splits_stop_with_counts_reasons_and_skip_tables(tiny_run, tmp_path):
    root = tmp_path / "ffpp"
    shutil.copytree(tiny_run / "results/synthetic/ffpp", root)
    # 2 pairs per split: 4 reals and 4 x 4 fakes
    assert corrupt_split(root, "val", "c23") == 20
    assert corrupt_split(root, "test", "c40") == 20
    extra = overlay(tmp_path, "real.yaml", {"datasets": {"roots": {"ffpp": str(root)}}, "methods": ["erm"]})
    work = tmp_path / "work"
    train = "results/train/ffpp-c23/erm/seed0/model.pt"
    evaluate = "results/evaluate/ffpp-c40-df/ffpp-c40/erm/seed0/metrics.json"
    result = snakemake(work, "--cores", "2", "--keep-going", train, evaluate,
                       configs=(TINY_CONFIG, extra), check=False)
    assert result.returncode != 0
    train_log = (work / "results/logs/train_models/ffpp-c23/seed0.log").read_text()
    assert "source ffpp-c23: no faces in the val split" in train_log
    # every technique of the face set: 4 reals and 4 x 4 fakes of the val pairs
    assert "lists 20 val videos of ffpp-c23; 0 gave faces (0 faces); skipped whole: 20 (" in train_log
    assert "Skip tables: results/faces/ffpp-c23/shard000.skips.csv, results/faces/ffpp-c23/shard001.skips.csv" in train_log
    evaluate_log = (work / "results/logs/evaluate_models/ffpp-c40-df/ffpp-c40/seed0.log").read_text()
    assert "target ffpp-c40-df (ffpp-c40, techniques ['Deepfakes']) has no test faces" in evaluate_log
    # the target is Deepfakes and the reals: 4 reals and 4 Deepfakes fakes of the test pairs
    assert "lists 8 test videos of ffpp-c40; 0 gave faces (0 faces); skipped whole: 8 (" in evaluate_log
    assert "results/faces/ffpp-c40/shard000.skips.csv" in evaluate_log
    assert "Traceback" not in train_log + evaluate_log
    assert not (work / train).exists() and not (work / evaluate).exists()


def test_too_few_shots_stop_with_the_pool_counts(tiny_run, tmp_path):
    work = tmp_path / "work"
    for part in ("synthetic", "data", "faces", "train/ffpp-c23"):
        shutil.copytree(tiny_run / "results" / part, work / "results" / part, copy_function=shutil.copy2)
    many = overlay(tmp_path, "many.yaml", {"tables": {"table2": [
        {"source": "ffpp-c23", "target": "celebdf", "shots": 500}]}})
    target = "results/evaluate/ffpp-c23/celebdf/erm/seed0/metrics.json"
    result = snakemake(work, "--cores", "1", target, configs=(TINY_CONFIG, many), check=False)
    assert result.returncode != 0
    log = (work / "results/logs/evaluate_models/ffpp-c23/celebdf/seed0.log").read_text()
    assert "target celebdf (celebdf):" in log and "fewer than shots=500" in log
    assert "Train split: the manifest results/data/celebdf/manifest.csv lists" in log
    assert "Skip tables: results/faces/celebdf/shard000.skips.csv" in log
    assert "Traceback" not in log and not (work / target).exists()


# ------------------------------------------------------------------ the data check


def copy_synthetic(tiny_run: Path, work: Path) -> None:
    shutil.copytree(tiny_run / "results/synthetic", work / "results/synthetic", copy_function=shutil.copy2)


def test_check_data_reads_the_embedded_benchmark_and_prints_its_report(tiny_run, tmp_path):
    work = tmp_path / "work"
    copy_synthetic(tiny_run, work)
    result = snakemake(work, "--cores", "1", "check_data")
    report = (work / "results/data/check.md").read_text()
    assert report.count("Embedded synthetic stand-in: the official counts do not apply.") == 4
    assert "5 of 5 table rows can be built." in report
    assert "5 of 5 table rows can be built." in result.stdout + result.stderr  # shown, not only written
    assert not (work / "results/frames").exists() and not (work / "results/faces").exists()


def test_check_data_reports_a_broken_root_against_the_official_counts(tiny_run, tmp_path):
    root = tmp_path / "ffpp"
    shutil.copytree(tiny_run / "results/synthetic/ffpp", root)
    shutil.rmtree(root / "manipulated_sequences/NeuralTextures")
    (root / "original_sequences/youtube/c40/videos/000.mp4").unlink()
    extra = overlay(tmp_path, "real.yaml", {"datasets": {"roots": {"ffpp": str(root)}}})
    work = tmp_path / "work"
    copy_synthetic(tiny_run, work)
    snakemake(work, "--cores", "1", "check_data", configs=(TINY_CONFIG, extra))
    report = (work / "results/data/check.md").read_text()
    ffpp = report.split("## ffpp:")[1].split("## celebdf")[0]
    # 10 pairs (6 + 2 + 2, two ids each) in the tiny benchmark, against FF++'s 1000 videos
    assert "| c23 original videos | 1000 | 20 | **missing** |" in ffpp
    assert "| c40 original videos | 1000 | 19 | **missing** |" in ffpp
    assert "| c23 NeuralTextures videos | 1000 | 0 | **missing** |" in ffpp
    assert "NeuralTextures folder absent" in ffpp and "inconsistencies" in ffpp
    assert "table3[1] ffpp-c40-df -> ffpp-c40-nt: **cannot be built**: no fake train videos of " \
           "ffpp-c40 (NeuralTextures) (target)" in report
    assert "3 of 5 table rows can be built." in report  # the two rows whose target is NT


# ------------------------------------------------------------------ backbones


def test_a_timm_baseline_trains_and_is_compared_with_daml(tiny_run, tmp_path):
    """A method on a timm backbone (timm's own small test network, trained with ERM) runs
    through training, the meta-test and Table 2 beside DAML on Conv-4, on the same faces."""
    work = tmp_path / "baseline"
    copy_preprocessed(tiny_run, work)
    extra = tmp_path / "baseline.yaml"
    extra.write_text(yaml.safe_dump({
        "methods": ["daml", "testnet"],
        "method_settings": {"testnet": {"algorithm": "erm", "backbone": "test_efficientnet",
                                        "image_size": 40, "label": "TestNet"}},
        "train": {"iterations": 20, "validate_every": 10, "checkpoint_every": 10},
    }))
    snakemake(work, "--cores", "2", "table2", configs=(TINY_CONFIG, extra))
    model = torch.load(work / "results/train/ffpp-c23/testnet/seed0/model.pt", weights_only=False)
    assert model["backbone"] == {"name": "test_efficientnet", "image_size": 40, "pretrained": "none"}
    assert model["algorithm"] == "erm" and model["image_size"] == 40
    metrics = json.loads((work / "results/evaluate/ffpp-c23/celebdf/testnet/seed1/metrics.json").read_text())
    assert metrics["backbone"]["name"] == "test_efficientnet"
    # the same shots for both methods, each at its own input size
    tuned = {m: torch.load(work / f"results/evaluate/ffpp-c23/celebdf/{m}/seed1/models.pt",
                           weights_only=False) for m in ("daml", "testnet")}
    assert tuned["testnet"]["image_size"] == 40 and tuned["daml"]["image_size"] == 32
    key = "celebdf/shots4/episode1"
    assert tuned["testnet"]["models"][key]["adapt"]["keys"] == tuned["daml"]["models"][key]["adapt"]["keys"]
    table = pd.read_csv(work / "results/tables/table2.csv")
    ours = table[(table.method == "TestNet (ours)") & (table.metric == "AUC")]
    assert set(ours.kind) == {"measured", "zero-shot"} and ours.value.notna().all()
    compared = table[table.method == "DAML - TestNet"]
    assert len(compared) >= 1 and compared[["ci_low", "ci_high"]].notna().all().all()
    assert "DAML - TestNet" in (work / "results/tables/table2.md").read_text()
