# Detect stage (target `detect` in the Snakefile): score a folder of the user's videos with a trained model (`daml detect` as a
# rule). The model file carries how its training faces were made, so the videos are sampled,
# aligned and scored exactly as the evaluate stage scores test faces. Not part of `all`.


rule detect_videos:
    input:
        model=config["detect"]["model"],
    output:
        videos=f"{DETECT_DIR}/videos.csv",
        frames=f"{DETECT_DIR}/frames.csv",
        json=f"{DETECT_DIR}/detections.json",
    log:
        "results/logs/detect_videos.log",
    conda:
        "../../envs/detect.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1,
    params:
        videos=detect_videos_folder,
        adapted=config["detect"]["adapted"],
        plot=config["detect"]["plot"],
        settings=config["evaluate"],
    script:
        "../../scripts/detect_videos.py"
