"""Import the DeepfakeBench face crops of one shard into the face shard files."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import config, deepfakebench, logs

with logs.to_file(snakemake.log[0]):
    faceset = snakemake.params.faceset
    deepfakebench.import_shard(
        Path(snakemake.input.manifest),
        Path(snakemake.input.frames),
        Path(snakemake.output.crops),
        Path(snakemake.output.index),
        Path(snakemake.output.skips),
        dataset=faceset["dataset"],
        compression=faceset["compression"],
        shard=int(snakemake.wildcards.shard),
        n_shards=faceset["n_shards"],
        settings=config.settings_from(
            deepfakebench.ImportSettings, snakemake.params.settings, "faces"
        ),
    )
