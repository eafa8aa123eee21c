# Evaluation stage: per-frame predictions on the target's test split, pooled into metrics.


rule evaluate_model:
    input:
        unpack(lambda w: face_shards(target_faceset(w))),
        manifest=target_manifest,
        model=evaluated_model,
    output:
        predictions="results/evaluate/{source}/{target}/{method}/seed{seed}/shots{shots}/predictions.csv",
        metrics="results/evaluate/{source}/{target}/{method}/seed{seed}/shots{shots}/metrics.json",
    log:
        "results/logs/evaluate_model/{source}/{target}/{method}/seed{seed}/shots{shots}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{source}/{target}/{method}/seed{seed}/shots{shots}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        target=lambda w: config["targets"][w.target],
        settings=config["evaluate"],
    script:
        "../../scripts/evaluate_model.py"
