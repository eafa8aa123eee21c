# Training stage: DAML, MAML and ERM on a source's tasks. One job per source and seed trains
# every configured method in turn, on the same faces, tasks, validation faces and selection
# shots, and writes one model per method; every table row that names the source reuses them.
# Validation selects each model after the meta-test fine-tuning (`adapt` settings), as the
# tables score it. The rolling checkpoints are not outputs, so Snakemake keeps them when a
# killed job is rerun, and each method resumes from its own.


rule train_models:
    input:
        unpack(source_shards),
        manifest=source_manifest,
    output:
        models=method_files(TRAIN_FILE, "model.pt"),
        histories=method_files(TRAIN_FILE, "history.csv"),
        validations=method_files(TRAIN_FILE, "validation.csv"),
    log:
        "results/logs/train_models/{source}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_models/{source}/seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=1,
    params:
        methods=METHOD_SPECS,
        source=source_domain,
        settings=config["train"],
        selection=selection_rule(),
        checkpoints=method_files(TRAIN_FILE, "checkpoint.pt"),
        # stored in model.pt: `daml detect` prepares a new video as these faces were made
        preprocessing=source_preprocessing,
    script:
        "../../scripts/train_models.py"
