"""Train DAML, MAML or ERM on one source's tasks; resumes from the rolling checkpoint."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import adapt, config, logs, train

with logs.to_file(snakemake.log[0]):
    train.train_model(
        [Path(p) for p in snakemake.input.crops],
        snakemake.params.source,
        snakemake.wildcards.method,
        int(snakemake.wildcards.seed),
        config.settings_from(train.TrainSettings, {**snakemake.params.settings, "threads": snakemake.threads}, "train"),
        config.settings_from(adapt.AdaptSettings, {**snakemake.params.selection, "threads": snakemake.threads}, "adapt"),
        out_model=Path(snakemake.output.model),
        out_history=Path(snakemake.output.history),
        out_validation=Path(snakemake.output.validation),
        checkpoint_path=Path(snakemake.params.checkpoint),
        manifest=Path(snakemake.input.manifest),
    )
