# Evaluation stage, the paper's meta-test: one job per source, target face set and seed scores
# the model of every method as trained and, for every row and shot count that needs it,
# fine-tuned on that many leak-free faces per class of the target's train split. The face set
# is loaded once and the shots are drawn once, so the methods meet the same faces.


rule evaluate_models:
    input:
        unpack(faceset_shards),
        manifest=faceset_manifest_of,
        models=rules.train_models.output.models,
    output:
        metrics=method_files(EVALUATION_FILE, "metrics.json"),
        predictions=method_files(EVALUATION_FILE, "predictions.csv"),
        models=method_files(EVALUATION_FILE, "models.pt"),
    log:
        "results/logs/evaluate_models/{source}/{faceset}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_models/{source}/{faceset}/seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1,
    params:
        methods=config["methods"],
        rows=evaluation_rows_of,
        adapt=config["adapt"],
        settings=config["evaluate"],
    script:
        "../../scripts/evaluate_models.py"
