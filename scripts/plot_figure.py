"""Draw one figure as PNG and PDF."""

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import figures, logs

with logs.to_file(snakemake.log[0]):
    figures.plot_figure(
        snakemake.wildcards.figure,
        snakemake.input.data,
        snakemake.params.figures,
        snakemake.params.methods,
        snakemake.params.seeds,
        snakemake.output.png,
        snakemake.output.pdf,
    )
