"""Run the real `snakemake` on the workflow of this repository, in a scratch directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests/workflow/config.yaml"


def snakemake(workdir: Path, *args: str, configs=(TINY_CONFIG,), timeout: int = 1200, check=True):
    """Run snakemake with the repository's Snakefile, config.yaml plus `configs`, in `workdir`."""
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(REPO / "config.yaml"), *map(str, configs),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table that `snakemake -n` prints."""
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts
