"""Fixtures shared by every test folder."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from snakemake_runs import snakemake

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def schema_path() -> Path:
    return SCHEMA


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One complete local run of the workflow on tests/workflow/config.yaml (`--cores 2`).

    Shared by the workflow tests and by the SLURM test, which compares its results with it.
    """
    work = tmp_path_factory.mktemp("tiny-cores2")
    snakemake(work, "--cores", "2")
    return work


@pytest.fixture(scope="session", autouse=True)
def slurm_answers_quickly():
    """Keep the single-node test cluster up for the session, where SLURM is installed.

    Snakemake's SLURM plugin runs `scontrol show config` at every start and waits up to
    10 s for an answer when SLURM is installed but no controller runs; the tests start
    Snakemake dozens of times. As root with the daemons installed (CI), the cluster of
    scripts/ci/start_slurm.sh runs for the whole session so every start is quick; the
    SLURM tests use it too. Elsewhere nothing happens.
    """
    script = REPO / "scripts/ci/start_slurm.sh"
    if os.geteuid() != 0 or not all(shutil.which(p) for p in ("slurmctld", "slurmd", "munged")):
        yield
        return
    started = subprocess.run(["timeout", "-k", "10", "180", "bash", str(script), "start"],
                             capture_output=True, text=True).returncode == 0
    yield
    if started:
        subprocess.run(["timeout", "-k", "10", "60", "bash", str(script), "stop"],
                       capture_output=True, text=True)
