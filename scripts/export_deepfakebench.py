"""Write the face sets in DeepfakeBench's preprocessed layout with its dataset JSONs."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import deepfakebench, logs

with logs.to_file(snakemake.log[0]):
    deepfakebench.export_deepfakebench(
        snakemake.params.shards,
        snakemake.params.manifests,
        Path(snakemake.output.folder),
        workdir=snakemake.params.workdir,
    )
