# Reproduction of "Difficulty-Aware Meta-Learning for Cross-Domain Face Forgery Detection".
# Stages, in pipeline order: data -> frames -> faces -> train -> evaluate (fine-tune and score) ->
# tables -> report.
# Datasets preprocessed by DeepfakeBench skip frames and faces: their crops are imported.
# Targets: all (default: everything, to the report), table1, table2, table3, loto, figures;
# check_data (readers only); export_deepfakebench (our faces in DeepfakeBench's layout);
# detect (score a folder of videos, `detect` section of the config).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/faces.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/detect.smk"
include: "workflow/rules/export.smk"


# Seconds of work each: on a cluster they run where Snakemake runs, not through the queue.
localrules:
    index_dataset,
    index_deepfakebench,
    check_data,
    make_table,
    plot_figure,
    render_report,


rule all:
    default_target: True
    input:
        rules.render_report.output.html,


rule table1:
    input:
        table_outputs("table1"),


rule table2:
    input:
        table_outputs("table2"),


rule table3:
    input:
        table_outputs("table3"),


rule loto:
    input:
        table_outputs("loto"),


rule figures:
    input:
        [f for fig in FIGURES for f in figure_outputs(fig)],


# not part of `all`: needs detect.videos (a folder of the user's videos)
rule detect:
    input:
        rules.detect_videos.output,
