"""Train every configured method on one source and seed; each resumes from its own checkpoint."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import adapt, config, logs, train

with logs.to_file(snakemake.log[0]):
    settings = config.settings_from(
        train.TrainSettings, {**snakemake.params.settings, "threads": snakemake.threads}, "train"
    )
    selection = config.settings_from(
        adapt.AdaptSettings, {**snakemake.params.selection, "threads": snakemake.threads}, "adapt"
    )
    outputs = zip(
        snakemake.params.methods,
        snakemake.output.models,
        snakemake.output.histories,
        snakemake.output.validations,
        snakemake.params.checkpoints,
    )
    for method, model, history, validation, checkpoint in outputs:
        train.train_model(
            [Path(p) for p in snakemake.input.crops],
            snakemake.params.source,
            method,
            int(snakemake.wildcards.seed),
            settings,
            selection,
            out_model=Path(model),
            out_history=Path(history),
            out_validation=Path(validation),
            checkpoint_path=Path(checkpoint),
            manifest=Path(snakemake.input.manifest),
        )
