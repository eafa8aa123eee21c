"""Detect, align and store the faces of one shard."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import config, faces, logs

with logs.to_file(snakemake.log[0]):
    faces.align_shard(
        Path(snakemake.input.frames),
        Path(snakemake.output.crops),
        Path(snakemake.output.index),
        Path(snakemake.output.skips),
        config.settings_from(faces.FaceSettings, snakemake.params.settings, "faces"),
        threads=snakemake.threads,
    )
