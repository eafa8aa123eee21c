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
    # face sets of DeepfakeBench inputs are imported instead (rule import_deepfakebench)
    wildcard_constraints:
        faceset=one_of(
            [f for f in FACESETS if f not in IMPORTED_FACESETS], "NO_FACESET"
        ),
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


# A DeepfakeBench input's face set: its aligned crops, resized to faces.crop_size, go straight
# into the same shard files; nothing is decoded and no face is detected.
rule import_deepfakebench:
    input:
        manifest=faceset_manifest_of,
        frames=faceset_frames_table,
    output:
        crops="results/faces/{faceset}/shard{shard}.npz",
        index="results/faces/{faceset}/shard{shard}.csv",
        skips="results/faces/{faceset}/shard{shard}.skips.csv",
    log:
        "results/logs/import_deepfakebench/{faceset}/shard{shard}.log",
    benchmark:
        "results/benchmarks/import_deepfakebench/{faceset}/shard{shard}.tsv"
    wildcard_constraints:
        faceset=one_of(IMPORTED_FACESETS, "NO_FACESET"),
    priority: 1  # as align_faces: every face set before any training
    conda:
        "../../envs/faces.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        settings={
            "crop_size": config["faces"]["crop_size"],
            "per_video": config["frames"]["per_video"],
        },
        faceset=faceset_of,
    script:
        "../../scripts/import_deepfakebench.py"
