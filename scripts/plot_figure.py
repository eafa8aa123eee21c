"""Draw one figure as PNG and PDF."""

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
