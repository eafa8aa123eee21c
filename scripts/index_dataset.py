"""Read one dataset's layout into its manifest and its table of problems."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import config, logs
from daml.data import manifest

with logs.to_file(snakemake.log.log):
    manifest.index_dataset(
        snakemake.wildcards.dataset,
        Path(snakemake.input.root),
        config.settings_from(manifest.IndexSettings, snakemake.params.settings, "datasets"),
        Path(snakemake.output.manifest),
        Path(snakemake.log.problems),
    )
