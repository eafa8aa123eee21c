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
if SOURCE not in sys.path:
    sys.path.insert(0, SOURCE)
