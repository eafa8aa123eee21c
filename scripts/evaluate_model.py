"""Predict every test face of the target and pool the predictions into metrics."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import config, evaluate, logs

with logs.to_file(snakemake.log[0]):
    evaluate.evaluate_model(
        Path(snakemake.input.model),
        [Path(p) for p in snakemake.input.crops],
        snakemake.params.target,
        out_predictions=Path(snakemake.output.predictions),
        out_metrics=Path(snakemake.output.metrics),
        manifest=Path(snakemake.input.manifest),
        settings=config.settings_from(evaluate.EvaluateSettings, {**snakemake.params.settings, "threads": snakemake.threads}, "evaluate"),
    )
