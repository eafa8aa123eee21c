# Report: one standalone HTML page with the tables, figures, settings, data provenance and timings.


rule render_report:
    input:
        tables=[f for t in TABLES for f in table_outputs(t)],
        figures=[f for fig in FIGURES for f in figure_outputs(fig)],
        manifests=all_manifests(),
        evaluations=all_table_metrics(),
        faces=[
            f
            for fs in used_facesets()
            for kind in ("index", "skips")
            for f in face_shards(fs)[kind]
        ],
    output:
        html=report(
            "results/report/index.html",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        "results/logs/render_report/report.log",
    benchmark:
        "results/benchmarks/render_report/report.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=config,
        problems=expand(rules.index_dataset.log.problems, dataset=DATASETS),
        synthetic=[d for d in DATASETS if is_synthetic(d)],
        schema=str(SCHEMA),
        benchmarks="results/benchmarks",
    script:
        "../../scripts/render_report.py"
