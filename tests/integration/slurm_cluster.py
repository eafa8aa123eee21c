"""Start, stop and watch the single-node SLURM test cluster of `scripts/ci/start_slurm.sh`.

The cluster itself is configured and started by the shell script (shared with CI);
this module wraps it for pytest and adds what the test needs around a run:
a bounded runner that aborts when a job can never start (it would otherwise stay
pending forever), and parsers for what proves that jobs went through sbatch.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_SCRIPT = REPO / "scripts/ci/start_slurm.sh"
SLURMCTLD_LOG = Path("/var/log/slurm/slurmctld.log")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")

# squeue reasons that mean a pending job will never run on this cluster.
NEVER_RUNS = {
    "PartitionConfig",
    "BadConstraints",
    "ReqNodeNotAvail",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "InvalidAccount",
    "InvalidQOS",
    "JobHeldAdmin",
    "JobHeldUser",
    "DependencyNeverSatisfied",
}

SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)")
RULE_LINE = re.compile(r"^\s*rule (\w+):\s*$", re.MULTILINE)


class SlurmTestError(RuntimeError):
    """The test cluster could not be started, or a job can never run on it."""


def missing_binaries() -> list[str]:
    """
    Description:
        Names of the SLURM/munge programs that are not installed here.

    Returns:
        list of str: empty when the cluster can be started.
    """
    return [
        name
        for name in DAEMONS
        if shutil.which(name) is None and not Path("/usr/sbin", name).exists()
    ]


def start(timeout: int = 120) -> str:
    """
    Description:
        Configures and starts munged, slurmctld and slurmd (idempotent) and waits until
        the node is idle.

    Arguments:
        timeout (int): seconds before giving up.

    Returns:
        str: the script's output (sinfo of the running cluster).
    """
    result = subprocess.run(
        ["timeout", "-k", "10", str(timeout), "bash", str(START_SCRIPT), "start"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SlurmTestError(
            f"{START_SCRIPT} start failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def stop(timeout: int = 60) -> None:
    """
    Description:
        Cancels remaining jobs and stops the daemons that the start script started.

    Arguments:
        timeout (int): seconds before giving up.
    """
    subprocess.run(
        ["timeout", "-k", "10", str(timeout), "bash", str(START_SCRIPT), "stop"],
        capture_output=True,
        text=True,
    )


def node_idle() -> bool:
    """Whether a test node answers sinfo and can take jobs now."""
    out = subprocess.run(
        ["timeout", "10", "sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True
    ).stdout.split()
    return bool(out) and out[0] in ("idle", "mixed", "allocated")


def node_limits() -> str:
    """The node's CPUs, memory and GRES as slurmctld sees them (for error messages)."""
    out = subprocess.run(
        ["timeout", "10", "sinfo", "-h", "-N", "-o", "%N CPUs=%c RealMemory=%m Gres=%G"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def node_capacity() -> dict[str, int]:
    """
    Description:
        What one job can get on the test node: CPUs, memory (MB) and GPUs.

    Returns:
        dict: {"cpus": int, "mem_mb": int, "gpu": int}.
    """
    out = subprocess.run(
        ["timeout", "10", "sinfo", "-h", "-N", "-o", "%c|%m|%G"], capture_output=True, text=True
    ).stdout.split()
    if not out:
        raise SlurmTestError(f"sinfo shows no node; is the cluster up? ({START_SCRIPT} status)")
    cpus, mem, gres = out[0].split("|")
    gpus = re.search(r"gpu(?::[^:,()]+)?:(\d+)", gres)
    return {"cpus": int(cpus), "mem_mb": int(mem), "gpu": int(gpus.group(1)) if gpus else 0}


def oversized_requests(dry_run_output: str, capacity: dict[str, int]) -> list[str]:
    """
    Description:
        Jobs of a `snakemake -n` run (without cluster profiles, so requests are not yet
        cut down by a profile's `resources:` caps) that ask for more threads, mem_mb or
        gpu than the node has: SLURM would reject them or leave them pending forever.

    Arguments:
        dry_run_output (str): output of `snakemake -n`.
        capacity (dict): from node_capacity().

    Returns:
        list of str: one message per offending rule and resource.
    """
    problems = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        asked = {"cpus": re.search(r"^\s+threads: (\d+)", block, re.MULTILINE)}
        asked["mem_mb"] = re.search(r"[ ,]mem_mb=(\d+)", block)
        asked["gpu"] = re.search(r"[ ,]gpu=(\d+)", block)
        for key, match in asked.items():
            if match and int(match.group(1)) > capacity[key]:
                problems.add(
                    f"rule {head.group(1)} asks {key}={match.group(1)} but the test node has "
                    f"{capacity[key]}"
                )
    return sorted(problems)


def _squeue(states: str) -> list[tuple[str, str]]:
    out = subprocess.run(
        ["timeout", "10", "squeue", "-h", "-t", states, "-o", "%i|%r"],
        capture_output=True,
        text=True,
    )
    rows = []
    for line in out.stdout.splitlines():
        if "|" in line:
            job, reason = line.strip().split("|", 1)
            rows.append((job, reason))
    return rows


@dataclass(frozen=True)
class RunResult:
    """What a watched command returned: its exit status and its combined output."""

    returncode: int
    output: str
    seconds: float


def run_watched(
    command: list[str],
    timeout: int,
    log_path: Path,
    cwd: Path,
    stuck_after: float = 120.0,
    poll: float = 3.0,
) -> RunResult:
    """
    Description:
        Runs `command` under `timeout -k` while watching the SLURM queue. If a pending
        job can never run (squeue reason such as PartitionConfig: it asks for more CPUs,
        memory or GPUs than the node has), or stays pending for `stuck_after` seconds
        while nothing runs, the command is killed, the pending jobs are cancelled and
        SlurmTestError says which job and why.

    Arguments:
        command (list of str): the command, e.g. a snakemake call.
        timeout (int): hard limit in seconds (timeout -k 15 around the command).
        log_path (Path): file receiving the command's stdout and stderr.
        cwd (Path): working directory of the command.
        stuck_after (float): seconds a job may stay pending while the node is idle.
        poll (float): seconds between queue checks.

    Returns:
        RunResult: exit status, output, wall time.
    """
    start_time = time.monotonic()
    pending_since: dict[str, float] = {}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["timeout", "-k", "15", str(timeout), *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
        problem = None
        try:
            while proc.poll() is None:
                time.sleep(poll)
                now = time.monotonic()
                pending = _squeue("PD")
                running = _squeue("R,CG")
                for job, reason in pending:
                    pending_since.setdefault(job, now)
                    waited = now - pending_since[job]
                    if reason in NEVER_RUNS:
                        problem = (job, reason, waited)
                    elif not running and waited > stuck_after:
                        problem = (job, reason, waited)
                if problem:
                    break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    output = log_path.read_text(errors="replace")
    if problem:
        jobs = [job for job, _ in _squeue("PD")]
        if jobs:
            subprocess.run(["timeout", "10", "scancel", *jobs], capture_output=True)
        job, reason, waited = problem
        raise SlurmTestError(
            f"SLURM job {job} can never start (pending {waited:.0f} s, reason {reason}). "
            f"A rule asks for more than the test node has ({node_limits()}): lower its "
            f"threads/mem_mb/gpu in the test config or raise the node in {START_SCRIPT}.\n"
            f"Output so far:\n{output[-3000:]}"
        )
    return RunResult(proc.returncode, output, time.monotonic() - start_time)


def submitted_jobs(output: str) -> dict[int, Path]:
    """
    Description:
        SLURM job ids and log files of every job the slurm executor submitted,
        parsed from Snakemake's output.

    Arguments:
        output (str): the output of a `snakemake --executor slurm` run.

    Returns:
        dict of int -> Path: SLURM job id -> its log file.
    """
    return {int(job): Path(path) for job, path in SUBMITTED.findall(output)}


def rule_counts(text: str) -> Counter:
    """Counts of `rule NAME:` headers (jobs of non-local rules) in Snakemake output."""
    return Counter(RULE_LINE.findall(text))


def completed_in_slurmctld(job_ids: list[int]) -> set[int]:
    """
    Description:
        The job ids that slurmctld's log records as submitted by sbatch and finished
        with exit status 0.

    Arguments:
        job_ids (list of int): SLURM job ids to look for.

    Returns:
        set of int: the subset of `job_ids` that ran to completion.
    """
    text = SLURMCTLD_LOG.read_text(errors="replace") if SLURMCTLD_LOG.exists() else ""
    submitted = {int(j) for j in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", text)}
    done = {int(j) for j in re.findall(r"_job_complete: JobId=(\d+) done", text)}
    ok = {int(j) for j in re.findall(r"_job_complete: JobId=(\d+) WEXITSTATUS 0", text)}
    return {j for j in job_ids if j in submitted and j in done and j in ok}
