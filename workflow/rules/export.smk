# Export: the face sets in DeepfakeBench's preprocessed layout and dataset JSONs, so that its
# detectors train and test on exactly our faces and splits (`snakemake export_deepfakebench`).


rule export_deepfakebench:
    input:
        unpack(export_inputs),
    output:
        folder=directory("results/deepfakebench"),
    log:
        "results/logs/export_deepfakebench/export.log",
    benchmark:
        "results/benchmarks/export_deepfakebench/export.tsv"
    conda:
        "../../envs/faces.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        shards=export_shards(),
        manifests=export_manifests(),
        workdir=config["export_deepfakebench"]["workdir"],
    script:
        "../../scripts/export_deepfakebench.py"
