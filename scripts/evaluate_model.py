"""The meta-test of one trained model on one face set: fine-tune on shots, score every target."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import adapt, config, evaluate, logs

with logs.to_file(snakemake.log[0]):
    threads = {"threads": snakemake.threads}
    evaluate.evaluate_model(
        Path(snakemake.input.model),
        [Path(p) for p in snakemake.input.crops],
        [evaluate.Row(r["target"], r["domain"], tuple(r["shots"])) for r in snakemake.params.rows],
        snakemake.wildcards.source,
        snakemake.wildcards.method,
        int(snakemake.wildcards.seed),
        config.settings_from(adapt.AdaptSettings, {**snakemake.params.adapt, **threads}, "adapt"),
        config.settings_from(evaluate.EvaluateSettings, {**snakemake.params.settings, **threads}, "evaluate"),
        out_metrics=Path(snakemake.output.metrics),
        out_predictions=Path(snakemake.output.predictions),
        out_models=Path(snakemake.output.models),
        manifest=Path(snakemake.input.manifest),
    )
