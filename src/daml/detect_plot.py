"""The picture of one scored video (`daml detect --plot`): its face crops and its score in time.

Description:
    Top: the aligned crops the model scored, in frame order, each titled with its frame
    number and probability of fake (red at or above `daml.metrics.FAKE_AT`). Bottom: the
    probability of every sampled frame against time (seconds when the container gives a
    frame rate, else frame numbers), the video score (mean frame probability) and the
    threshold; a frame without a face is a grey tick on the axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from daml.io import atomic_path
from daml.metrics import FAKE_AT

COLUMNS = 8  # crops per row


def plot_video(result, score: float, path: str | Path) -> Path:
    """Write the picture of a scored `daml.detect.VideoResult` to `path` (PNG)."""
    faces = [row for row in result.frames if row["how"] != "no face"]
    missing = [row for row in result.frames if row["how"] == "no face"]
    columns = min(COLUMNS, len(faces))
    rows = math.ceil(len(faces) / columns)
    figure = Figure(figsize=(1.4 * max(columns, 5), 1.6 * rows + 2.6), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[1.0] * rows + [1.6])
    for i, (row, crop) in enumerate(zip(faces, result.crops)):
        axis = figure.add_subplot(grid[i // columns, i % columns])
        axis.imshow(crop)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(f"frame {row['frame']}\np = {row['prob']:.2f}", fontsize=8,
                       color="tab:red" if row["prob"] >= FAKE_AT else "tab:blue")
    axis = figure.add_subplot(grid[rows, :])
    seconds = all(not math.isnan(row["time"]) for row in result.frames)
    where = (lambda row: row["time"]) if seconds else (lambda row: row["frame"])
    axis.plot([where(r) for r in faces], [r["prob"] for r in faces], "o-", color="0.2",
              label="frame probability")
    axis.axhline(score, color="tab:red" if score >= FAKE_AT else "tab:blue",
                 label=f"video score {score:.3f}")
    axis.axhline(FAKE_AT, color="0.6", linestyle="--", linewidth=1, label=f"fake at {FAKE_AT}")
    if missing:
        axis.plot([where(r) for r in missing], np.zeros(len(missing)), "|", color="0.5",
                  markersize=12, label="no face")
    axis.set_ylim(-0.03, 1.03)
    axis.set_xlabel("time (s)" if seconds else "frame")
    axis.set_ylabel("P(fake)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    figure.suptitle(result.video, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path
