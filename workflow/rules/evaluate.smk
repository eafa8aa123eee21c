# Evaluation stage, the paper's meta-test: one job per trained model and target face set scores
# the model as trained and, for every row and shot count that needs it, fine-tuned on that many
# leak-free faces per class of the target's train split. The face set is loaded once.


rule evaluate_model:
    input:
        unpack(faceset_shards),
        manifest=faceset_manifest_of,
        model=rules.train_model.output.model,
    output:
        metrics="results/evaluate/{source}/{faceset}/{method}/seed{seed}/metrics.json",
        predictions="results/evaluate/{source}/{faceset}/{method}/seed{seed}/predictions.csv",
        models="results/evaluate/{source}/{faceset}/{method}/seed{seed}/models.pt",
    log:
        "results/logs/evaluate_model/{source}/{faceset}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{source}/{faceset}/{method}/seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1,
    params:
        rows=evaluation_rows_of,
        adapt=config["adapt"],
        settings=config["evaluate"],
    script:
        "../../scripts/evaluate_model.py"
