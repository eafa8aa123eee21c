"""Fine-tune a trained model on k labelled faces per class of the target."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import adapt, config, logs

with logs.to_file(snakemake.log[0]):
    adapt.adapt_model(
        Path(snakemake.input.model),
        [Path(p) for p in snakemake.input.crops],
        snakemake.params.target,
        int(snakemake.wildcards.shots),
        int(snakemake.wildcards.seed),
        config.settings_from(adapt.AdaptSettings, {**snakemake.params.settings, "threads": snakemake.threads}, "adapt"),
        out_model=Path(snakemake.output.model),
        manifest=Path(snakemake.input.manifest),
    )
