"""Every command the README gives a user works from the install the README gives.

The environment is built as the README's first command builds it (a new venv, the README's
pinned torch and torchvision, `pip install -e '.[workflow]'`), so nothing of the `test` extra is in it: CI's
own environment hid that `snakemake --report` needs the `reports` extra. The commands are
read from the README's bash blocks, so a command added there is run here or must be named in
`SKIPPED` with the reason; a command named here that the README no longer gives fails too.
Every console script of `[project.scripts]` must answer `--help` from the same install.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from snakemake_runs import REPO, TINY_CONFIG

pytestmark = [pytest.mark.workflow, pytest.mark.timeout(1800)]

README = REPO / "README.md"
# how each README command is checked on the tiny config: "run" (for real) or "dry" (-n)
CHECKED = {
    "snakemake --cores all table1": "run",
    "snakemake --cores all check_data": "run",
    "snakemake --cores all": "run",
    "snakemake --report results/report/snakemake.html": "run",
    "snakemake --cores all table2": "dry",
    "snakemake --cores all table3": "dry",
    "snakemake --cores all loto": "dry",
    "snakemake --cores all figures": "dry",
    "snakemake --cores all --configfile workflow/presets/paper.yaml": "dry",
    "snakemake --cores all --configfile workflow/presets/seeds5.yaml": "dry",
    "snakemake --cores all --resources gpu=1": "dry",
    # a real run of a timm baseline: tests/workflow/test_workflow.py (tiny network, same path)
    "snakemake --cores all table2 --configfile workflow/presets/baselines.yaml": "dry",
    "snakemake --cores all --configfile workflow/presets/paper.yaml workflow/presets/baselines-paper.yaml": "dry",
    "snakemake --profile profiles/slurm": "dry",  # a real submission: tests/integration/test_slurm.py
    # on the finished run; its scores against the evaluate stage: tests/workflow/test_detect_workflow.py
    'snakemake --cores all detect --config "detect={videos: results/synthetic/dfdc}"': "run",
    "daml detect results/synthetic/celebdf/Celeb-synthesis --model "
    "results/train/ffpp-c23/daml/seed0/model.pt --plot --out results/detect-celebdf": "run",
    # a real export (and DeepfakeBench inputs): tests/workflow/test_deepfakebench_workflow.py
    "snakemake --cores all export_deepfakebench": "dry",
}
SKIPPED = {
    "snakemake --cores all --use-conda": "needs conda 24.7.1+ and conda-forge, neither reachable "
    "here; tests/workflow/test_conda_deploy.py deploys and checks the environments",
    "python -m pytest": "the test suite itself",
}
SETUP = ("python3 -m venv .venv", ". .venv/bin/activate")
TORCH = re.compile(r"pip install (torch==\S+(?: torchvision==\S+)?)$")
INSTALL = ("pip install -e '.[workflow]'", "pip install -e '.[workflow,test]'")


def torch_pins(commands: list[str]) -> list[str]:
    """The requirements of the README's torch line (`pip install torch==... torchvision==...`)."""
    pins = {match.group(1) for c in commands if (match := TORCH.match(c))}
    assert len(pins) == 1, f"the README should pin torch in one way, found {sorted(pins)}"
    return pins.pop().split()


def readme_commands(text: str) -> list[str]:
    """The commands of the README's bash blocks: each line, split at `&&`, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands += [" ".join(part.split()) for part in line.split("&&")]
    return list(dict.fromkeys(commands))


def test_every_readme_command_is_checked_or_named_as_skipped():
    commands = readme_commands(README.read_text())
    known = {*CHECKED, *SKIPPED, *SETUP, *INSTALL, "pip install " + " ".join(torch_pins(commands))}
    unknown = [c for c in commands if c not in known]
    assert not unknown, f"README commands with no check here: {unknown}; add them to CHECKED or SKIPPED"
    stale = [c for c in [*CHECKED, *SKIPPED] if c not in commands]
    assert not stale, f"checked here but no longer in the README: {stale}"
    assert "pip install -e '.[workflow]'" in commands  # the install the fixture below copies


@pytest.fixture(scope="session")
def readme_env(tmp_path_factory) -> Path:
    """A venv holding exactly what the README's first command installs."""
    venv = tmp_path_factory.mktemp("readme-env") / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q"]
    for command in (torch_pins(readme_commands(README.read_text())), ["-e", f"{REPO}[workflow]"]):
        done = subprocess.run(pip + command, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv


def run(venv: Path, workdir: Path, command: str, dry: bool):
    """A README snakemake command on the tiny config in `workdir`, with the venv's snakemake."""
    args = shlex.split(command)[1:]
    configs = [REPO / "config.yaml", TINY_CONFIG]
    if "--configfile" in args:  # presets go on top, as the user's would
        i = args.index("--configfile")
        presets = [a for a in args[i + 1:] if a.endswith(".yaml")]
        configs += [REPO / p for p in presets]
        del args[i:i + 1 + len(presets)]
    if "--profile" in args:
        i = args.index("--profile")
        args[i + 1] = str(REPO / args[i + 1])
    full = [str(venv / "bin/python"), "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", *map(str, configs), *args,
            *(["-n"] if dry else [])]
    done = subprocess.run(full, capture_output=True, text=True, timeout=900, cwd=workdir)
    assert done.returncode == 0, f"`{command}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-4000:]}"
    return done


def test_readme_commands_work_from_the_readme_install(readme_env, tiny_run, tmp_path):
    # from scratch: a named table and the data check
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run(readme_env, fresh, "snakemake --cores all table1", dry=False)
    assert (fresh / "results/tables/table1.md").is_file()
    assert not (fresh / "results/report/index.html").exists()  # a table builds only what it needs
    run(readme_env, fresh, "snakemake --cores all check_data", dry=False)
    assert (fresh / "results/data/check.md").is_file()
    # on a finished run (the shared tiny run, copied): the default target, Snakemake's report
    done = tmp_path / "done"
    shutil.copytree(tiny_run, done, ignore=shutil.ignore_patterns("locks"))
    run(readme_env, done, "snakemake --cores all", dry=False)
    assert (done / "results/report/index.html").is_file()
    run(readme_env, done, "snakemake --report results/report/snakemake.html", dry=False)
    assert (done / "results/report/snakemake.html").stat().st_size > 10_000
    for command, how in CHECKED.items():
        if how == "dry":
            run(readme_env, done, command, dry=True)
    # scoring videos, as a target and with the console script, on the finished run
    run(readme_env, done, 'snakemake --cores all detect --config "detect={videos: results/synthetic/dfdc}"',
        dry=False)
    assert "scored" in (done / "results/detect/videos.csv").read_text()
    [detect] = [c for c in CHECKED if c.startswith("daml detect")]
    scored = subprocess.run([str(readme_env / "bin/daml"), *shlex.split(detect)[1:]], cwd=done,
                            capture_output=True, text=True, timeout=900)
    assert scored.returncode == 0, f"`{detect}` failed:\n{scored.stdout[-3000:]}\n{scored.stderr[-3000:]}"
    assert len(list((done / "results/detect-celebdf/plots").glob("*.png"))) >= 3
    # every console script the package declares starts from the README's install
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get("scripts", {})
    for script in scripts:
        helped = subprocess.run([str(readme_env / "bin" / script), "--help"], capture_output=True,
                              text=True, timeout=120)
        assert helped.returncode == 0, f"`{script} --help` failed:\n{helped.stderr[-3000:]}"
