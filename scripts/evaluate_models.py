"""The meta-test of one source's models on one face set: fine-tune on shots, score every target."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import adapt, config, evaluate, logs

with logs.to_file(snakemake.log[0]):
    threads = {"threads": snakemake.threads}
    output = snakemake.output
    files = zip(
        snakemake.params.methods,
        snakemake.input.models,
        output.metrics,
        output.predictions,
        output.models,
    )
    evaluate.evaluate_models(
        [
            evaluate.Evaluation(method, Path(model), Path(metrics), Path(predictions), Path(tuned))
            for method, model, metrics, predictions, tuned in files
        ],
        [Path(p) for p in snakemake.input.crops],
        [evaluate.Row(r["target"], r["domain"], tuple(r["shots"])) for r in snakemake.params.rows],
        snakemake.wildcards.source,
        int(snakemake.wildcards.seed),
        config.settings_from(
            adapt.AdaptSettings, {**snakemake.params.adapt, **threads}, "adapt"
        ),
        config.settings_from(
            evaluate.EvaluateSettings, {**snakemake.params.settings, **threads}, "evaluate"
        ),
        manifest=Path(snakemake.input.manifest),
    )
