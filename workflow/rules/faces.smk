# Face stage: RetinaFace detection and 5-point alignment into compact per-shard arrays.


rule align_faces:
    input:
        frames=rules.extract_frames.output.frames,
    output:
        crops="results/faces/{faceset}/shard{shard}.npz",
        index="results/faces/{faceset}/shard{shard}.csv",
        skips="results/faces/{faceset}/shard{shard}.skips.csv",
    log:
        "results/logs/align_faces/{faceset}/shard{shard}.log",
    benchmark:
        "results/benchmarks/align_faces/{faceset}/shard{shard}.tsv"
    # on a cluster both steps of a shard run as one job, so the frames never leave the node
    group:
        "faces"
    conda:
        "../../envs/faces.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        settings={k: v for k, v in config["faces"].items() if k != "shards"},
    script:
        "../../scripts/align_faces.py"
