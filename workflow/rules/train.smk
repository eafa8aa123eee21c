# Training stage: DAML, MAML or ERM on a source's tasks. One model per source, method and seed,
# shared by every table row that names the source. Validation selects the model after the
# meta-test fine-tuning (`adapt` settings), as the tables score it. The rolling checkpoint is
# not an output, so Snakemake keeps it when a killed job is rerun and training resumes from it.


rule train_model:
    input:
        unpack(source_shards),
        manifest=source_manifest,
    output:
        model="results/train/{source}/{method}/seed{seed}/model.pt",
        history="results/train/{source}/{method}/seed{seed}/history.csv",
        validation="results/train/{source}/{method}/seed{seed}/validation.csv",
    log:
        "results/logs/train_model/{source}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_model/{source}/{method}/seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=1,
    params:
        source=source_domain,
        settings=config["train"],
        selection=config["adapt"],
        checkpoint="results/train/{source}/{method}/seed{seed}/checkpoint.pt",
    script:
        "../../scripts/train_model.py"
