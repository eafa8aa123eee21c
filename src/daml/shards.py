"""Face shard files as every face stage writes them: their columns and the crop writer.

Description:
    A face shard is `shard{N}.npz` (`crops`, uint8 (N,S,S,3) RGB, uncompressed), `shard{N}.csv`
    (`CROP_COLUMNS`, one row per crop, same order) and `shard{N}.skips.csv` (`SKIP_COLUMNS`).
    Two rules write them: `align_faces` (`daml.faces`, detection and alignment) and
    `import_deepfakebench` (`daml.deepfakebench`, crops another tool aligned). Both stream
    their crops through `CropWriter`, so peak memory stays at one video's worth whatever the
    shard holds. This module needs neither the detector nor torch.

References:
    docs/architecture.md, section "Faces".
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from daml.data.manifest import CARRIED_COLUMNS
from daml.io import atomic_path, write_csv

#: crop rows: the manifest's columns, the frame, the face box and 5 landmarks in the source
#: image, the detector's score and how the crop was made (`detected`, `fallback`, `imported`)
CROP_COLUMNS = CARRIED_COLUMNS + ["frame", "x1", "y1", "x2", "y2"] + [
    f"lm{i}{axis}" for i in range(5) for axis in "xy"] + ["score", "how"]
SKIP_COLUMNS = ["key", "path", "frame", "reason"]


class CropWriter:
    """Appends crops to a raw temporary file, then streams them into an npz.

    Holding a whole shard's crops in memory would grow with the shard (1000 videos x 32
    frames x 256^2 x 3 = 6 GB); this keeps peak memory at one video's worth.
    """

    def __init__(self, directory: Path, crop_size: int):
        self.crop_size = crop_size
        self.count = 0
        self.raw = tempfile.TemporaryFile(dir=directory, prefix=".crops.")

    def add(self, crop: np.ndarray) -> None:
        self.raw.write(np.ascontiguousarray(crop, np.uint8).tobytes())
        self.count += 1

    def write_npz(self, path: Path) -> None:
        """Write `crops` (N,S,S,3) uint8 as an uncompressed npz that `np.load` reads."""
        shape = (self.count, self.crop_size, self.crop_size, 3)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                  "fortran_order": False, "shape": shape}
        self.raw.seek(0)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as archive:
            with archive.open("crops.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_2_0(member, header)
                shutil.copyfileobj(self.raw, member, 1 << 20)

    def close(self) -> None:
        self.raw.close()


def write_shard(writer: CropWriter, out_npz: Path, rows: list, out_csv: Path, skips: list,
                out_skips: Path) -> None:
    """A face shard's three files: the writer's crops, their rows and the skips, each atomic.

    The npz comes first, so a shard whose CSV exists has its crops (`daml.facedata` checks
    that they agree).
    """
    with atomic_path(out_npz) as tmp:
        writer.write_npz(tmp)
    write_csv(out_csv, pd.DataFrame(rows, columns=CROP_COLUMNS))
    write_csv(out_skips, pd.DataFrame(skips, columns=SKIP_COLUMNS))
