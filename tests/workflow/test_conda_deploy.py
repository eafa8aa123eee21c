"""`--use-conda` as Snakemake deploys it, as far as a machine without conda channels allows.

Snakemake does not create a rule's environment from the file in `envs/`: it copies the file
to `.snakemake/conda/<hash>.yaml` in the working directory and runs `conda env create --file`
on the copy, and conda runs the pip section from the copy's folder. Then the rule's script runs
with that environment's Python, in which this project is not installed. These tests do each of
those steps that can run here: the copy, every pip entry resolved from the copy's folder, and a
real rule run by Snakemake with a Python that has the third-party packages but not the project.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from snakemake_runs import REPO, TINY_CONFIG

pytestmark = [pytest.mark.workflow, pytest.mark.timeout(900)]

ENVS = sorted((REPO / "envs").glob("*.yaml"))


def deploy(env_file: Path, workdir: Path) -> Path:
    """Copy an env file where Snakemake puts it before `conda env create` runs on it."""
    digest = hashlib.md5(env_file.read_bytes()).hexdigest()
    target = workdir / ".snakemake" / "conda" / f"{digest}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(env_file, target)
    return target


def pip_entries(env_file: Path) -> list[str]:
    spec = yaml.safe_load(env_file.read_text())
    entries = []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            entries += dep.get("pip", [])
    return entries


@pytest.mark.parametrize("env_file", ENVS, ids=[p.stem for p in ENVS])
def test_every_pip_entry_resolves_from_the_deployed_copy(env_file, tmp_path):
    deployed = deploy(env_file, tmp_path)
    for entry in pip_entries(deployed):
        option, _, value = entry.partition(" ")
        if option in ("-e", "--editable") or entry.startswith((".", "/")):
            path = value.strip() if option in ("-e", "--editable") else entry
            # what conda does: pip runs in the folder of the deployed copy
            result = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
                 "--no-build-isolation", *([option] if option.startswith("-") else []), path],
                cwd=deployed.parent, capture_output=True, text=True, timeout=300,
            )
            assert result.returncode == 0, (
                f"{env_file.name}: pip entry {entry!r} does not resolve from {deployed.parent}, "
                f"where conda runs pip:\n{result.stdout}{result.stderr}"
            )
        else:
            Requirement(entry)  # a package from the index: must be a valid requirement


def python_without_the_project(tmp_path: Path) -> Path:
    """A venv that sees this environment's third-party packages but not the installed project."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # a plain path line: the packages of the test environment, without running its .pth
    # files, so the editable install of the project (a .pth of its own) is not seen
    Path(purelib, "third_party.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    probe = subprocess.run([str(python), "-c", "import daml"], capture_output=True, text=True,
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert probe.returncode != 0, "the project is still importable: the check would prove nothing"
    subprocess.run([str(python), "-c", "import snakemake, pandas, av"], check=True, cwd=tmp_path)
    return python


def test_a_rule_script_runs_where_the_project_is_not_installed(tmp_path):
    python = python_without_the_project(tmp_path)
    work = tmp_path / "work"
    target = "results/data/wilddeepfake/manifest.csv"
    result = subprocess.run(
        [str(python), "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
         str(work), "--configfile", str(REPO / "config.yaml"), str(TINY_CONFIG), "--cores", "1",
         target],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert (work / target).stat().st_size > 0
