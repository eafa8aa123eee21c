"""Write the embedded synthetic stand-in of one dataset in its official layout."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import config, logs
from daml.data import synthetic

with logs.to_file(snakemake.log[0]):
    synthetic.generate(
        snakemake.wildcards.dataset,
        Path(snakemake.output.root),
        config.settings_from(synthetic.SyntheticSettings, snakemake.params.settings, "synthetic"),
    )
