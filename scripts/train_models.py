"""Train every configured method on one source and seed; each resumes from its own checkpoint."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import adapt, config, logs, train
from daml.methods import MethodSpec

with logs.to_file(snakemake.log[0]):
    threads = {"threads": snakemake.threads}
    output = snakemake.output
    files = zip(
        snakemake.params.methods,
        output.models,
        output.histories,
        output.validations,
        snakemake.params.checkpoints,
    )
    train.train_models(
        [Path(p) for p in snakemake.input.crops],
        snakemake.params.source,
        int(snakemake.wildcards.seed),
        config.settings_from(train.TrainSettings, {**snakemake.params.settings, **threads}, "train"),
        config.settings_from(adapt.AdaptSettings, {**snakemake.params.selection, **threads}, "adapt"),
        [
            train.ModelFiles(
                MethodSpec.from_dict(method), Path(model), Path(history), Path(validation),
                Path(checkpoint),
            )
            for method, model, history, validation, checkpoint in files
        ],
        manifest=Path(snakemake.input.manifest),
        preprocessing=snakemake.params.preprocessing,
    )
