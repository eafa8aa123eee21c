"""Score the videos of `detect.videos` with `detect.model` into results/detect/ (`daml detect`)."""

from pathlib import Path

import workflow_package  # noqa: F401  (puts the workflow's src/ first on sys.path)
from daml import detect, logs

with logs.to_file(snakemake.log[0]):
    settings = snakemake.params.settings
    detect.detect_videos(
        [snakemake.params.videos],
        Path(snakemake.input.model),
        Path(snakemake.output.videos).parent,
        detect.DetectSettings(settings["device"], settings["precision"], settings["batch_size"],
                              snakemake.threads),
        adapted=snakemake.params.adapted,
        plot=snakemake.params.plot,
        progress=False,
    )
