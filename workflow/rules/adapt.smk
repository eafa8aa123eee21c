# Adaptation stage: few-shot fine-tuning of a trained model on k labelled faces per class of the
# target's training split (only for shots > 0; shots0 evaluates the trained model as is).


rule adapt_model:
    input:
        unpack(lambda w: face_shards(target_faceset(w))),
        manifest=target_manifest,
        model=rules.train_model.output.model,
    output:
        model="results/adapt/{source}/{target}/{method}/seed{seed}/shots{shots}/model.pt",
    log:
        "results/logs/adapt_model/{source}/{target}/{method}/seed{seed}/shots{shots}.log",
    benchmark:
        "results/benchmarks/adapt_model/{source}/{target}/{method}/seed{seed}/shots{shots}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=1,
    params:
        target=lambda w: config["targets"][w.target],
        settings=config["adapt"],
    script:
        "../../scripts/adapt_model.py"
