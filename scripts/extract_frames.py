"""Decode the videos of one shard and keep uniformly sampled frames."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import config, frames, logs

with logs.to_file(snakemake.log[0]):
    frames.extract_shard(
        Path(snakemake.input.manifest),
        Path(snakemake.output.frames),
        dataset=snakemake.params.faceset["dataset"],
        compression=snakemake.params.faceset["compression"],
        shard=int(snakemake.wildcards.shard),
        n_shards=snakemake.params.faceset["n_shards"],
        settings=config.settings_from(frames.FrameSettings, snakemake.params.settings, "frames"),
    )
