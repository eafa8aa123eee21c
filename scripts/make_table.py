"""Build one table (ours beside the paper's numbers) as CSV, Markdown and LaTeX."""

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import logs, tables

with logs.to_file(snakemake.log[0]):
    tables.make_table(
        snakemake.wildcards.table,
        snakemake.params.entries,
        snakemake.params.methods,
        snakemake.params.seeds,
        snakemake.input.metrics,
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.output.tex,
        predictions_paths=snakemake.input.predictions,
    )
