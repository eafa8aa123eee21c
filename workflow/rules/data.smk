# Data stage: the embedded synthetic benchmark (when a root is null) and one manifest per dataset.


rule generate_benchmark:
    output:
        root=directory("results/synthetic/{dataset}"),
    log:
        "results/logs/generate_benchmark/{dataset}.log",
    benchmark:
        "results/benchmarks/generate_benchmark/{dataset}.tsv"
    priority: 1  # as the frames and faces stages: all data before any training
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=config["synthetic"],
    script:
        "../../scripts/generate_benchmark.py"


rule index_dataset:
    input:
        root=dataset_root,
    output:
        manifest=report(
            "results/data/{dataset}/manifest.csv",
            caption="../report/manifest.rst",
            category="Data",
            labels={"dataset": "{dataset}", "file": "manifest"},
        ),
    log:
        # the problems table is a log, not an output, so it survives a failed run
        # (Snakemake deletes the outputs of a failed job) and tells what to fix
        log="results/logs/index_dataset/{dataset}.log",
        problems="results/data/{dataset}/problems.csv",
    benchmark:
        "results/benchmarks/index_dataset/{dataset}.tsv"
    # a dataset in its official layout (DeepfakeBench inputs: rule index_deepfakebench)
    wildcard_constraints:
        dataset=one_of([d for d in DATASETS if d not in DEEPFAKEBENCH], "NO_DATASET"),
    priority: 1  # as the frames and faces stages: all data before any training
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        settings={
            k: config["datasets"][k]
            for k in ("on_inconsistency", "val_fraction", "seed")
        },
    script:
        "../../scripts/index_dataset.py"


# A dataset preprocessed by DeepfakeBench (datasets.deepfakebench): its JSON gives the manifest
# and the frames table of its face crops, which the face stage imports (rule
# import_deepfakebench).
rule index_deepfakebench:
    input:
        root=dataset_root,
        json=deepfakebench_json,
    output:
        manifest=report(
            "results/data/{dataset}/manifest.csv",
            caption="../report/manifest.rst",
            category="Data",
            labels={"dataset": "{dataset}", "file": "manifest"},
        ),
        frames="results/data/{dataset}/frames.csv",
    log:
        log="results/logs/index_deepfakebench/{dataset}.log",
        problems="results/data/{dataset}/problems.csv",
    benchmark:
        "results/benchmarks/index_deepfakebench/{dataset}.tsv"
    wildcard_constraints:
        dataset=one_of(DEEPFAKEBENCH, "NO_DATASET"),
    priority: 1  # as the frames and faces stages: all data before any training
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings={
            k: config["datasets"][k]
            for k in ("on_inconsistency", "val_fraction", "seed")
        },
        source=deepfakebench_source,
    script:
        "../../scripts/index_deepfakebench.py"


# `snakemake check_data`: only the readers, before any preprocessing (docs/datasets.md).
rule check_data:
    input:
        unpack(dataset_roots),
    output:
        report="results/data/check.md",
    log:
        "results/logs/check_data/check.log",
    benchmark:
        "results/benchmarks/check_data/check.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        synthetic=[d for d in DATASETS if is_synthetic(d)],
        deepfakebench=DEEPFAKEBENCH,
        settings={
            k: config["datasets"][k]
            for k in ("on_inconsistency", "val_fraction", "seed")
        },
        config={k: config[k] for k in ("tables", "sources", "targets")},
    script:
        "../../scripts/check_data.py"
