"""Make the workflow's own `daml` package importable in every rule script.

Snakemake runs a rule's script from a copy under `.snakemake/scripts/`, with this folder
(`scripts/`) appended to `sys.path`. Importing this module puts the checkout's `src/` first,
so a script imports the code of the workflow it belongs to, whether the job runs in the
user's environment, in a per-rule conda environment (`--use-conda`, where the project is not
installed) or on a cluster node.
"""

import sys
from pathlib import Path

SOURCE = str(Path(__file__).resolve().parents[1] / "src")
# first, even when it is already on the path: Snakemake appends its own process's path (which
# holds src/) behind the job's, where an installed copy of `daml` (say, another checkout's
# editable install) would otherwise come before it
sys.path[:] = [SOURCE] + [p for p in sys.path if p != SOURCE]
