"""Run every dataset reader and report what was found, against the documented counts."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import config, logs
from daml.data import check, manifest

with logs.to_file(snakemake.log[0]):
    check.check_data(
        {dataset: Path(snakemake.input[dataset]) for dataset in config.DATASETS},
        set(snakemake.params.synthetic),
        config.settings_from(manifest.IndexSettings, snakemake.params.settings, "datasets"),
        snakemake.params.config,
        Path(snakemake.output.report),
        deepfakebench_inputs=snakemake.params.deepfakebench,
    )
