"""Render the HTML report from the tables, figures, manifests, face indexes and benchmarks."""

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import logs, report

with logs.to_file(snakemake.log[0]):
    report.render_report(
        snakemake.output.html,
        tables=snakemake.input.tables,
        figures=snakemake.input.figures,
        manifests=snakemake.input.manifests,
        problems=snakemake.params.problems,
        faces=snakemake.input.faces,
        config=snakemake.params.config,
        synthetic=snakemake.params.synthetic,
        schema_path=snakemake.params.schema,
        benchmarks_dir=snakemake.params.benchmarks,
        evaluations=snakemake.input.evaluations,
    )
