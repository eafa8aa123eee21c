# Tables and figures: the paper's numbers beside ours.


rule make_table:
    input:
        metrics=table_metrics,
        predictions=table_predictions,
    output:
        csv=report(
            "results/tables/{table}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md="results/tables/{table}.md",
        tex="results/tables/{table}.tex",
    log:
        "results/logs/make_table/{table}.log",
    benchmark:
        "results/benchmarks/make_table/{table}.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        entries=table_entries,
        methods=METHOD_LABELS,
        seeds=config["seeds"],
    script:
        "../../scripts/make_table.py"


rule plot_figure:
    input:
        data=figure_inputs,
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        pdf="results/figures/{figure}.pdf",
    log:
        "results/logs/plot_figure/{figure}.log",
    benchmark:
        "results/benchmarks/plot_figure/{figure}.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figures=config["figures"],
        methods=config["methods"],
        seeds=config["seeds"],
    script:
        "../../scripts/plot_figure.py"
