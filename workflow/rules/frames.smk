# Frames stage: decode each video of a shard and sample frames uniformly. The frames are
# temporary: the face stage consumes them and Snakemake deletes them afterwards.


rule extract_frames:
    input:
        manifest=faceset_manifest_of,
    output:
        frames=temp(directory("results/frames/{faceset}/shard{shard}")),
    log:
        "results/logs/extract_frames/{faceset}/shard{shard}.log",
    benchmark:
        "results/benchmarks/extract_frames/{faceset}/shard{shard}.tsv"
    priority: 1  # as align_faces: every face set before any training
    # on a cluster both steps of a shard run as one job, so the frames never leave the node
    group:
        "faces"
    conda:
        "../../envs/faces.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        settings=PREPROCESSING["frames"],
        faceset=faceset_of,
    script:
        "../../scripts/extract_frames.py"
