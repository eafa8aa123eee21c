"""Write one synthetic dataset stand-in to disk, atomically.

Description:
    `generate` renders every job of `layouts.plan` into a temporary sibling folder of `root`
    and renames it to `root` only when everything is written (`daml.io.atomic_folder`), so
    a killed run leaves a dot-folder (`.NAME.tmpPID`, removed on the next run) and never a
    plausible-looking half dataset.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from tqdm import tqdm

from daml.data.synthetic.layouts import DATASETS, Clip, Job, plan
from daml.data.synthetic.settings import SyntheticSettings
from daml.data.synthetic.video import write_mp4, write_png_tar
from daml.errors import DamlError
from daml.io import atomic_folder

__all__ = ["generate"]

log = logging.getLogger(__name__)


def generate(dataset: str, root: str | os.PathLike, settings: SyntheticSettings) -> None:
    """Generate one dataset stand-in in its real layout.

    Arguments:
        dataset: "ffpp", "celebdf", "dfdc" or "wilddeepfake".
        root: the dataset folder to create (replaced if it exists).
        settings: scale knobs and seed; the same settings give the same PNG bytes and the
            same decoded video frames.

    Example:
        >>> generate("ffpp", Path("data/ffpp"), SyntheticSettings(seed=0, width=160,
        ...          height=120, fps=25, frames=16, ffpp_pairs=(6, 2, 2), celebdf_videos=8,
        ...          dfdc_videos=8, wilddeepfake_sequences=8))
    """
    if dataset not in DATASETS:
        raise DamlError(f"unknown synthetic dataset {dataset!r}: use one of {', '.join(DATASETS)}")
    root = Path(root)
    start = time.perf_counter()
    with atomic_folder(root) as tmp:
        the_plan = plan(dataset, settings)
        for relative, text in the_plan.metadata.items():
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp / relative).write_text(text)
        counts = {0: 0, 1: 0}
        for job in tqdm(the_plan.jobs, desc=f"synthetic {dataset}", unit="file"):
            for clip in _write(job, tmp, settings.fps):
                counts[clip.label] += 1
        n_bytes = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    n_files = sum(len(job.paths) for job in the_plan.jobs)
    log.info("synthetic %s: wrote %d real and %d fake %s in %d media files, plus %s "
             "(%.1f MB) to %s in %.1f s", dataset, counts[0], counts[1],
             "sequences" if dataset == "wilddeepfake" else "videos", n_files,
             ", ".join(the_plan.metadata) or "no metadata files", n_bytes / 1e6, root,
             time.perf_counter() - start)


def _write(job: Job, folder: Path, fps: int) -> list[Clip]:
    clips = job.render()
    if job.crfs:
        for relative, crf in zip(job.paths, job.crfs):
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            write_mp4(folder / relative, clips[0].frames, fps, crf)
    else:
        (folder / job.paths[0]).parent.mkdir(parents=True, exist_ok=True)
        write_png_tar(folder / job.paths[0],
                      {member: clip.frames for member, clip in zip(job.members, clips)})
    return clips
