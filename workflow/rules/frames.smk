# Frames stage: decode each video of a shard and sample frames uniformly. The frames are
# temporary: the face stage consumes them and Snakemake deletes them afterwards.


rule extract_frames:
    input:
        manifest=lambda w: rules.index_dataset.output.manifest.format(
            dataset=faceset_dataset(w.faceset)
        ),
    output:
        frames=temp(directory("results/frames/{faceset}/shard{shard}")),
    log:
        "results/logs/extract_frames/{faceset}/shard{shard}.log",
    benchmark:
        "results/benchmarks/extract_frames/{faceset}/shard{shard}.tsv"
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
        settings=config["frames"],
        dataset=lambda w: faceset_dataset(w.faceset),
        compression=lambda w: faceset_compression(w.faceset),
        n_shards=lambda w: config["faces"]["shards"][w.faceset],
    script:
        "../../scripts/extract_frames.py"
