"""Fixtures for integration tests: a real single-node SLURM cluster on this machine."""

from __future__ import annotations

import os

import pytest

import slurm_cluster  # tests/integration is on sys.path (rootdir-style test folders)


def _unavailable(reason: str) -> None:
    """Skip, or fail under CI=true, where the cluster must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"SLURM test cluster unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster_running():
    """
    Description:
        Starts munged, slurmctld and slurmd with scripts/ci/start_slurm.sh for the tests
        of one module and stops them afterwards, also when a test fails. As a user other
        than root it uses a cluster that is already running, else it skips (fails under
        CI=true), as it does when the programs are missing.

    Returns:
        str: sinfo output of the running cluster.
    """
    missing = slurm_cluster.missing_binaries()
    if missing:
        _unavailable(
            f"SLURM/munge programs missing ({', '.join(missing)}); "
            "install them with: apt-get install -y slurm-wlm munge"
        )
    if os.geteuid() != 0:
        # Not root: use a cluster started before (e.g. `sudo scripts/ci/start_slurm.sh`)
        # and leave it running.
        if slurm_cluster.node_idle():
            yield "already running"
            return
        _unavailable(
            "starting the SLURM test cluster needs root (it writes /etc/slurm); "
            "start it with `sudo scripts/ci/start_slurm.sh` first"
        )
    if slurm_cluster.node_idle():  # started for the whole session (tests/conftest.py)
        yield "already running"
        return
    try:
        info = slurm_cluster.start()
    except slurm_cluster.SlurmTestError as err:
        slurm_cluster.stop()
        pytest.fail(str(err), pytrace=False)
    try:
        yield info
    finally:
        slurm_cluster.stop()
