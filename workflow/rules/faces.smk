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
    # Every face set before any training: evaluation needs them all, and a face set left for
    # later holds back its sources' training and evaluation to the end of the run.
    priority: 1
    # on a cluster both steps of a shard run as one job, so the frames never leave the node
    group:
        "faces"
    conda:
        "../../envs/faces.yaml"
    # one thread: a job asking for two never starts on a 2-core machine while one-thread jobs
    # keep a core busy (a default run once aligned FF++ c23 and Celeb-DF last, a core idle)
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        settings=PREPROCESSING["faces"],
    script:
        "../../scripts/align_faces.py"
