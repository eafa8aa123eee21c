"""Read one dataset preprocessed by DeepfakeBench into its manifest, problems and frames tables."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import config, logs
from daml.data import deepfakebench, manifest

with logs.to_file(snakemake.log.log):
    manifest.index_deepfakebench(
        snakemake.wildcards.dataset,
        deepfakebench.Source.from_config(snakemake.params.source),
        config.settings_from(manifest.IndexSettings, snakemake.params.settings, "datasets"),
        Path(snakemake.output.manifest),
        Path(snakemake.log.problems),
        Path(snakemake.output.frames),
    )
