"""Fixtures shared by every test folder."""

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
