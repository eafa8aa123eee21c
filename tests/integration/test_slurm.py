"""The workflow on a real single-node SLURM cluster gives the same results as a local run.

Runs the repository's Snakefile on its tiny test configuration with `--profile profiles/slurm
--profile profiles/slurm-test` against the cluster of scripts/ci/start_slurm.sh, and compares
it with the shared local run of the same configuration (fixture `tiny_run`). Checks that every non-local job went through sbatch
(one SLURM log per job under .snakemake/slurm_logs/, each job id submitted and finished
with status 0 in slurmctld's log, GPU rules given a GPU) and that every JSON/CSV result
matches the local run's. Every snakemake call runs under `timeout -k`; a job that can
never start on the node fails the test with the reason instead of hanging.

Environment (optional): DAML_SLURM_TIMEOUT (seconds per snakemake run, default 1800).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

import slurm_cluster
from slurm_cluster import REPO

PROFILES = REPO / "profiles"
SNAKEFILE = REPO / "Snakefile"
# the same configuration as the shared local run (fixture `tiny_run`) it is compared with
CONFIGFILES = [REPO / "config.yaml", REPO / "tests/workflow/config.yaml"]
RUN_TIMEOUT = int(os.environ.get("DAML_SLURM_TIMEOUT", "1800"))
GPU_RULES = ("train_models", "evaluate_models")
# Keys/columns that legitimately differ between two runs of the same work.
VOLATILE = re.compile(r"time|seconds|duration|elapsed|date|host|cuda|device", re.IGNORECASE)

# pytest-timeout, where installed, bounds the whole test; `timeout -k` bounds each run.
bounded = (
    pytest.mark.timeout(2 * RUN_TIMEOUT + 300)
    if importlib.util.find_spec("pytest_timeout")
    else (lambda test: test)
)


def _snakemake(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--configfile",
        *map(str, CONFIGFILES),
        "--workflow-profile",
        str(PROFILES / "default"),
        *extra,
    ]


def _result_files(workdir: Path) -> dict[str, Path]:
    """JSON and CSV files under results/, minus logs and benchmarks, by relative path."""
    files = {}
    for path in sorted((workdir / "results").rglob("*")):
        rel = path.relative_to(workdir)
        if path.suffix not in (".json", ".csv") or {"logs", "benchmarks"} & set(rel.parts):
            continue
        files[str(rel)] = path
    return files


def _same_value(a, b) -> bool:
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)


def _diff_json(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(a)} != {sorted(b)}"]
        out = []
        for key in a:
            if not VOLATILE.search(str(key)):
                out += _diff_json(a[key], b[key], f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff_json(x, y, f"{where}[{i}]")]
    return [] if _same_value(a, b) else [f"{where}: {a!r} != {b!r}"]


def _diff_csv(a: str, b: str) -> list[str]:
    rows_a, rows_b = list(csv.reader(io.StringIO(a))), list(csv.reader(io.StringIO(b)))
    if len(rows_a) != len(rows_b):
        return [f"{len(rows_a)} rows != {len(rows_b)} rows"]
    if not rows_a:
        return []
    header = rows_a[0]
    if header != rows_b[0]:
        return [f"header {header} != {rows_b[0]}"]
    keep = [i for i, name in enumerate(header) if not VOLATILE.search(name)]
    out = []
    for n, (ra, rb) in enumerate(zip(rows_a[1:], rows_b[1:]), start=2):
        for i in keep:
            if i >= len(ra) or i >= len(rb) or not _same_value(ra[i], rb[i]):
                out.append(f"line {n}, column {header[i]}: {ra[i:i+1]} != {rb[i:i+1]}")
    return out


def compare_results(local: Path, remote: Path) -> list[str]:
    """
    Description:
        Differences between the JSON/CSV results of two runs: missing files, and values
        that differ beyond rel 1e-6 (numbers) or at all (text). Keys and columns named
        like timings, hosts or devices are ignored, and each run's own directory is
        replaced by a placeholder before comparing.

    Arguments:
        local (Path): working directory of the reference run.
        remote (Path): working directory of the run to check.

    Returns:
        list of str: one line per difference; empty when the results match.
    """
    files_a, files_b = _result_files(local), _result_files(remote)
    problems = [f"only in local run: {p}" for p in sorted(set(files_a) - set(files_b))]
    problems += [f"only in SLURM run: {p}" for p in sorted(set(files_b) - set(files_a))]
    for rel in sorted(set(files_a) & set(files_b)):
        text_a = files_a[rel].read_text().replace(str(local), "<WORKDIR>")
        text_b = files_b[rel].read_text().replace(str(remote), "<WORKDIR>")
        if text_a == text_b:
            continue
        if rel.endswith(".json"):
            diffs = _diff_json(json.loads(text_a), json.loads(text_b))
        else:
            diffs = _diff_csv(text_a, text_b)
        problems += [f"{rel}: {d}" for d in diffs[:5]]
    return problems


def _gpu_requests(job_ids) -> dict[int, str]:
    """TRES per job of the jobs slurmctld still knows (MinJobAge=300 s)."""
    found = {}
    for job in job_ids:
        out = subprocess.run(
            ["timeout", "10", "scontrol", "show", "job", str(job)], capture_output=True, text=True
        ).stdout
        if out:
            match = re.search(r"TresPer(?:Job|Node)=(\S+)", out)
            found[job] = match.group(1) if match else ""
    return found


def _load(profile: str) -> dict:
    return yaml.safe_load((PROFILES / profile / "config.yaml").read_text())


def test_profiles_layer_cleanly():
    """profiles/default is applied on top of any --profile: it must not shadow cluster keys."""
    slurm, test, default = _load("slurm"), _load("slurm-test"), _load("default")
    shadowed = set(default) & (set(slurm) | set(test))
    assert not shadowed, f"profiles/default would override SLURM settings: {sorted(shadowed)}"
    assert slurm["executor"] == "slurm"
    # A later --profile replaces a whole top-level key: the test profile must repeat
    # every default resource of the cluster profile.
    assert set(slurm["default-resources"]) <= set(test["default-resources"])
    assert test["slurm-status-command"] == "squeue"
    for rule in GPU_RULES:
        assert slurm["set-resources"][rule]["gpu"] == 1


def test_compare_results_sees_differences(tmp_path):
    """The comparison reports changed numbers and missing files, not timings."""
    a, b = tmp_path / "a", tmp_path / "b"
    for root, auc, secs in ((a, 0.75, 1.0), (b, 0.75, 9.0)):
        (root / "results/evaluate").mkdir(parents=True)
        (root / "results/evaluate/metrics.json").write_text(
            json.dumps({"frame": {"auc": auc, "n": 4}, "seconds": secs})
        )
        (root / "results/t.csv").write_text(f"method,auc,elapsed_s\ndaml,{auc},{secs}\n")
    assert compare_results(a, b) == []
    (b / "results/t.csv").write_text("method,auc,elapsed_s\ndaml,0.7501,1\n")
    (b / "results/extra.json").write_text("{}")
    (b / "results/logs").mkdir()
    (b / "results/logs/x.json").write_text("{}")
    assert compare_results(a, b) == [
        "only in SLURM run: results/extra.json",
        "results/t.csv: line 2, column auc: ['0.75'] != ['0.7501']",
    ]


@pytest.mark.slurm
@bounded
def test_unsatisfiable_job_fails_fast(slurm_cluster_running, tmp_path):
    """A job asking for more CPUs than the node has is reported, not waited on forever."""
    cpus = slurm_cluster.node_capacity()["cpus"] + 1
    with pytest.raises(slurm_cluster.SlurmTestError, match="PartitionConfig"):
        slurm_cluster.run_watched(
            ["sbatch", "--wait", "-c", str(cpus), "-o", str(tmp_path / "%j.out"), "--wrap", "true"],
            timeout=120,
            log_path=tmp_path / "sbatch.log",
            cwd=tmp_path,
        )


@pytest.mark.slurm
@pytest.mark.workflow
@bounded
def test_workflow_on_slurm_matches_local(slurm_cluster_running, tiny_run, tmp_path):
    for path in (SNAKEFILE, *CONFIGFILES):
        assert path.exists(), f"{path} is missing: the test runs the real workflow on it"

    local, remote = tiny_run, tmp_path / "slurm"
    remote.mkdir()

    # Requests larger than the node: sbatch rejects them or they pend forever, and the
    # cluster profile's `resources:` caps would hide them; catch them before running.
    dry = subprocess.run(
        ["timeout", "-k", "10", "300", *_snakemake(tmp_path / "dry", "-n", "--cores", "2")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert dry.returncode == 0, f"dry run failed:\n{dry.stdout[-3000:]}\n{dry.stderr[-3000:]}"
    oversized = slurm_cluster.oversized_requests(
        dry.stdout + dry.stderr, slurm_cluster.node_capacity()
    )
    assert not oversized, "rules ask for more than the SLURM test node has:\n" + "\n".join(
        oversized
    )

    ran = slurm_cluster.run_watched(
        _snakemake(
            remote,
            "--profile",
            str(PROFILES / "slurm"),
            "--profile",
            str(PROFILES / "slurm-test"),
        ),
        RUN_TIMEOUT,
        tmp_path / "slurm.log",
        cwd=REPO,
    )
    print(f"SLURM run: {ran.seconds:.0f} s")
    assert ran.returncode == 0, f"SLURM run failed ({ran.returncode}):\n{ran.output[-6000:]}"

    # Every non-local job ran inside a SLURM job that slurmctld saw finish with status 0.
    jobs = slurm_cluster.submitted_jobs(ran.output)
    assert jobs, f"no job was submitted with sbatch:\n{ran.output[-4000:]}"
    missing_logs = [str(p) for p in jobs.values() if not p.is_file()]
    assert not missing_logs, f"SLURM job logs missing: {missing_logs}"
    in_jobs = sum(
        (slurm_cluster.rule_counts(p.read_text(errors="replace")) for p in jobs.values()),
        start=Counter(),
    )
    scheduled = slurm_cluster.rule_counts(ran.output)
    assert (
        scheduled == in_jobs
    ), f"jobs scheduled by snakemake {dict(scheduled)} != jobs run inside SLURM jobs {dict(in_jobs)}"
    finished = slurm_cluster.completed_in_slurmctld(list(jobs))
    assert finished == set(jobs), f"not finished in slurmctld: {sorted(set(jobs) - finished)}"

    # GPU rules asked SLURM for a GPU (checked for the jobs slurmctld still holds).
    tres = _gpu_requests([j for j, p in jobs.items() if any(r in str(p) for r in GPU_RULES)])
    no_gpu = {j: t for j, t in tres.items() if "gpu" not in t}
    assert not no_gpu, f"GPU rules submitted without a GPU request: {no_gpu}"

    # Same results as the local run.
    assert _result_files(remote), "the SLURM run produced no JSON/CSV results"
    problems = compare_results(local, remote)
    assert not problems, "SLURM and local results differ:\n" + "\n".join(problems[:40])
