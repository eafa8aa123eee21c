"""Face shards in memory: load, filter, resize once; turn index batches into network inputs.

Description:
    The face stage writes `results/faces/{faceset}/shard{N}.npz` (`crops`, uint8 (N,S,S,3)
    RGB) and a `shard{N}.csv` beside it with one row per crop (docs/architecture.md,
    "Faces"). Training, adaptation and evaluation read them through `load_faces`, which
    keeps only the requested split(s) and techniques, resizes every crop once to the
    model's input size and keeps the result as uint8 (a quarter of float32 memory).
    `to_input` turns a batch of those uint8 crops into normalised float input in
    [-1, 1], (B,3,S,S) with channels-last strides (free: a permuted HWC view).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from daml.config import FACESETS, faceset_compression
from daml.data.manifest import CARRIED_COLUMNS, reason_kind, select_rows, shard_of
from daml.errors import DamlError
from daml.io import atomic_path, write_csv

log = logging.getLogger(__name__)

COLUMNS = CARRIED_COLUMNS + ["frame"]  # the manifest's columns of a crop row, then its frame
# identity columns are strings, empty where a layout publishes none
TEXT_COLUMNS = {"key": str, "video": str, "target_id": str, "source_id": str, "clip_id": str}
REAL = "real"


@dataclass
class Faces:
    """Face crops held in memory with their metadata.

    Attributes:
        images: uint8 tensor (N,S,S,3), RGB, already resized to the model input size.
        table: DataFrame with the columns of `COLUMNS`, row i describing `images[i]`
            (index 0..N-1).
    """

    images: torch.Tensor
    table: pd.DataFrame

    def __len__(self) -> int:
        return len(self.table)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor(self.table["label"].to_numpy(dtype=np.float32))

    def subset(self, index: np.ndarray) -> "Faces":
        """The faces at integer positions `index`, in that order."""
        index = np.asarray(index, dtype=np.int64)
        return Faces(
            self.images[torch.as_tensor(index)], self.table.iloc[index].reset_index(drop=True)
        )

    def to(self, device: torch.device) -> "Faces":
        return Faces(self.images.to(device), self.table)


def shard_table_path(shard: str | Path) -> Path:
    """The metadata CSV that belongs to a shard (`shard007.npz` -> `shard007.csv`)."""
    return Path(shard).with_suffix(".csv")


def _read_shard_table(shard: Path) -> pd.DataFrame | None:
    """The metadata CSV of one shard, checked; None for an empty shard."""
    csv = shard_table_path(shard)
    for path in (shard.with_suffix(".npz"), csv):
        if not path.exists():
            raise DamlError(f"{path}: face shard file missing; rerun the faces stage")
    try:
        table = pd.read_csv(csv, dtype=TEXT_COLUMNS, keep_default_na=False, na_values={})
    except pd.errors.EmptyDataError:
        log.warning("%s: empty face table; shard skipped", csv)
        return None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DamlError(f"{csv}: columns {missing} missing; rerun the faces stage")
    return table


def _typed(tables: list[pd.DataFrame]) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    table = pd.concat(tables, ignore_index=True)
    table["label"] = table["label"].astype(int)
    table["frame"] = table["frame"].astype(int)
    return table


def load_table(
    shards: Sequence[str | Path],
    techniques: Sequence[str] | None = None,
    splits: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The metadata of the selected faces (as `load_faces`), without reading any crop."""
    tables = []
    for shard in map(Path, shards):
        table = _read_shard_table(shard)
        if table is not None:
            tables.append(table.loc[select_rows(table, techniques, splits), COLUMNS])
    return _typed(tables)


def load_faces(
    shards: Sequence[str | Path],
    image_size: int,
    techniques: Sequence[str] | None = None,
    splits: Iterable[str] | None = None,
    positions: Sequence[int] | None = None,
) -> Faces:
    """Load the selected faces of some shards, resized to `image_size`.

    Arguments:
        shards: `shard{N}.npz` paths (their `.csv` must lie beside them).
        image_size: side of the resized square crops (antialiased bilinear).
        techniques: fake techniques to keep, plus every real face; None keeps all.
        splits: splits to keep (e.g. ["train"]); None keeps all.
        positions: only these rows of what `load_table` gives for the same shards and
            filters, in this order (None: all); only they are resized.

    Returns:
        `Faces` in shard order, then row order (or in `positions` order). Raises
        `DamlError` naming the shard when a file is missing or the CSV and the array disagree.
    """
    wanted = None if positions is None else np.asarray(positions, dtype=np.int64)
    images, tables = [], []
    offset = 0
    for shard in map(Path, shards):
        table = _read_shard_table(shard)
        if table is None:
            continue
        mask = select_rows(table, techniques, splits)
        selected = np.flatnonzero(mask)
        first, offset = offset, offset + len(selected)
        if wanted is not None:
            selected = selected[np.isin(np.arange(first, offset), wanted)]
        if len(selected) == 0:
            continue
        npz = shard.with_suffix(".npz")
        with np.load(npz) as archive:
            if "crops" not in archive:
                raise DamlError(f"{npz}: no `crops` array; rerun the faces stage")
            crops = archive["crops"]  # read once: every access to an npz member reloads it
        if len(table) != crops.shape[0]:
            raise DamlError(
                f"{npz}: {crops.shape[0]} crops but {len(table)} rows in "
                f"{shard_table_path(shard)}; rerun the faces stage for this shard"
            )
        images.append(resize(torch.from_numpy(crops[selected]), image_size))
        tables.append(table.iloc[selected][COLUMNS])
    if not images:
        faces = Faces(torch.zeros((0, image_size, image_size, 3), dtype=torch.uint8), _typed([]))
    else:
        faces = Faces(torch.cat(images), _typed(tables))
    if wanted is None:
        return faces
    if wanted.size and (wanted.min() < 0 or wanted.max() >= offset):
        raise DamlError(f"positions outside the {offset} selected faces of {len(shards)} shards")
    # rows came out in ascending position order; restore the order asked for
    return faces.subset(np.searchsorted(np.unique(wanted), wanted))


def resize(crops: torch.Tensor, image_size: int, chunk: int = 1024) -> torch.Tensor:
    """Resize uint8 (N,S,S,3) crops to (N,image_size,image_size,3) uint8, in chunks."""
    if crops.shape[1] == image_size and crops.shape[2] == image_size:
        return crops.contiguous()
    out = torch.empty((crops.shape[0], image_size, image_size, 3), dtype=torch.uint8)
    for start in range(0, crops.shape[0], chunk):
        part = crops[start : start + chunk].permute(0, 3, 1, 2).float()
        part = F.interpolate(
            part,
            size=(image_size, image_size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        out[start : start + chunk] = (
            part.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        )
    return out


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B,S,S,3) crops -> float32 (B,3,S,S) in [-1, 1] with channels-last strides."""
    return images.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def skips_path(shard: str | Path) -> Path:
    """The skip table that belongs to a shard (`shard007.npz` -> `shard007.skips.csv`)."""
    return Path(shard).with_suffix(".skips.csv")


def describe_split(
    shards: Sequence[str | Path],
    manifest_csv: str | Path | None,
    faceset: str,
    techniques: Sequence[str] | None,
    split: str,
) -> str:
    """What became of one split's videos between the manifest and the face shards.

    For a message when a split yields too few faces: how many videos of the face set,
    split and techniques the manifest lists, how many gave faces, how many were skipped
    whole or lost every frame, counted by reason, and the skip tables to open.

    Arguments:
        shards: the face set's shards.
        manifest_csv: `results/data/{dataset}/manifest.csv` (None: not counted).
        faceset: e.g. "ffpp-c23" (its compression picks the manifest rows).
        techniques: fake techniques kept (None: all).
        split: "train", "val" or "test".
    """
    tables = [t for t in (_read_shard_table(Path(s)) for s in shards) if t is not None]
    faces = _typed([t.loc[select_rows(t, techniques, [split]), COLUMNS] for t in tables])
    with_faces = set(faces["key"])
    listed: set[str] | None = None
    parts = []
    if manifest_csv is not None and Path(manifest_csv).is_file():
        manifest = pd.read_csv(manifest_csv, dtype=str, keep_default_na=False)
        # a library caller may pass no face set; read the manifest as a single-quality one
        compression = faceset_compression(faceset) if faceset in FACESETS else "none"
        manifest = manifest[manifest["compression"] == compression]
        manifest = manifest.assign(label=manifest["label"].astype(int))
        listed = set(manifest.loc[select_rows(manifest, techniques, [split]), "key"])
        parts.append(f"the manifest {manifest_csv} lists {len(listed)} {split} videos of {faceset}")
    parts.append(f"{len(with_faces)} gave faces ({len(faces)} faces)")
    whole: dict[str, int] = {}
    frames: dict[str, set] = {}
    for shard in shards:
        path = skips_path(shard)
        if not path.is_file() or path.stat().st_size == 0:
            continue
        skips = pd.read_csv(path, dtype={"key": str, "reason": str}, keep_default_na=False)
        if listed is not None:
            skips = skips[skips["key"].isin(listed)]
        for row in skips.itertuples():
            kind = reason_kind(row.reason)
            if int(row.frame) == -1:
                whole[kind] = whole.get(kind, 0) + 1
            elif row.key not in with_faces:
                frames.setdefault(kind, set()).add(row.key)
    if whole:
        parts.append("skipped whole: " + ", ".join(f"{n} ({r})" for r, n in sorted(whole.items())))
    if frames:
        parts.append("every sampled frame lost: " + ", ".join(
            f"{len(keys)} ({r})" for r, keys in sorted(frames.items())))
    tables_to_open = ", ".join(str(skips_path(s)) for s in shards)
    return "; ".join(parts) + f". Skip tables: {tables_to_open}"


def write_face_shards(
    folder: str | Path, faces: Iterable[tuple[dict, np.ndarray]], n_shards: int
) -> list[Path]:
    """Face shards in the face stage's format, from (crop row, crop) pairs held in memory.

    For tests and benchmarks that make their own faces (the face stage streams its crops
    to disk instead). Each video goes to `shard_of(key, n_shards)`, as the stage puts it.

    Arguments:
        folder: where `shardNNN.npz`, `.csv` and an empty `.skips.csv` are written.
        faces: (row, crop): a dict with at least `COLUMNS`, and a uint8 (S,S,3) RGB crop.
        n_shards: how many shards.

    Returns:
        the `shardNNN.npz` paths, in shard order.
    """
    folder = Path(folder)
    rows: list[list[dict]] = [[] for _ in range(n_shards)]
    crops: list[list[np.ndarray]] = [[] for _ in range(n_shards)]
    for row, crop in faces:
        shard = shard_of(row["key"], n_shards)
        rows[shard].append(row)
        crops[shard].append(crop)
    paths = []
    for shard in range(n_shards):
        npz = folder / f"shard{shard:03d}.npz"
        with atomic_path(npz) as tmp:
            np.savez(tmp, crops=np.stack(crops[shard]) if crops[shard] else np.zeros((0, 1, 1, 3), np.uint8))
        write_csv(shard_table_path(npz), pd.DataFrame(rows[shard]))
        write_csv(skips_path(npz), pd.DataFrame(columns=["key", "path", "frame", "reason"]))
        paths.append(npz)
    return paths
