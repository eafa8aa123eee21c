"""Frame extraction: decode and uniformly sample N frames per video or frame sequence.

Description:
    The frames stage reads the videos of one shard of a faceset (docs/architecture.md,
    "Frames") one at a time and writes `results/frames/{faceset}/shard{shard}/`: per video
    `NNNN.npz` with `frames` (T,H,W,3 uint8 RGB) and `indices` (T,) frame numbers, plus
    `index.csv` (`key,file,n_frames,total_frames,status,reason`). Two additions to that
    contract: `manifest.csv` (the shard's manifest rows, so the face stage can copy the
    manifest columns through without re-reading the whole manifest), and, in a sequence's
    npz, `bad_indices`/`bad_reasons` for PNG frames that could not be read (so the face
    stage lists them in its skip table and no sampled frame is lost silently).

    A bad input never stops the shard: it becomes an `index.csv` row with status `skipped`
    and the reason (`UnreadableInput.reason`). Peak memory is one video's sampled frames.

References:
    Sampling 32 frames per video uniformly is the common protocol of deepfake benchmarks.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tarfile
import zlib
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from daml.data.manifest import shard_of
from daml.errors import DamlError
from daml.io import atomic_folder

log = logging.getLogger(__name__)

__all__ = [
    "FrameSettings",
    "UnreadableInput",
    "sample_indices",
    "read_video_frames",
    "frame_rate",
    "read_sequence_frames",
    "shard_of",
    "select_shard",
    "extract_shard",
    "INDEX_COLUMNS",
]

INDEX_COLUMNS = ["key", "file", "n_frames", "total_frames", "status", "reason"]
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass(frozen=True)
class FrameSettings:
    """Settings of the frames stage (config section `frames`).

    Arguments:
        per_video: frames sampled uniformly per video or sequence (all frames if fewer).
        max_side: frames whose longer side exceeds this are downscaled to it, keeping the
            aspect ratio (INTER_AREA); 0 keeps the decoded size. Bounds memory, disk and the
            detector's cost.
        compress: store the per-video npz files zlib-compressed (smaller temporary folder,
            more CPU) instead of uncompressed.
    """

    per_video: int
    max_side: int
    compress: bool


class UnreadableInput(DamlError):
    """A video or frame sequence that cannot be used; `reason` is the short table entry.

    The frames stage catches it and records a `skipped` row; callers of
    `read_video_frames` / `read_sequence_frames` see it as a `DamlError`.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}; replace or re-download the file, or leave it "
                         "out of the dataset folder (the frames stage skips it and counts it)")


def sample_indices(total: int, n: int) -> np.ndarray:
    """Frame numbers spread uniformly and deterministically over [0, total).

    Description:
        Frame k of n is the centre of the k-th of n equal bins, `floor((2k+1) total / 2n)`,
        computed in integers so the result never depends on floating point rounding.

    Arguments:
        total: number of frames available.
        n: number wanted (>= 1).

    Returns:
        int64 array, strictly increasing: all `total` frames when total <= n, else n of them.
    """
    if n < 1:
        raise DamlError(f"frames per video must be at least 1, got {n}: fix frames.per_video")
    if total <= 0:
        return np.zeros(0, np.int64)
    if total <= n:
        return np.arange(total, dtype=np.int64)
    k = np.arange(n, dtype=np.int64)
    return (2 * k + 1) * total // (2 * n)


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) after downscaling so the longer side is at most `max_side`."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _mp4_truncated(path: Path) -> bool:
    """Whether an ISO media (mp4/mov) file's top-level boxes run past its end."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 8 or head[4:8] != b"ftyp":
            return False
        offset = 0
        while offset < size:
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                return True
            box = int.from_bytes(header[:4], "big")
            if box == 1:
                if len(header) < 16:
                    return True
                box = int.from_bytes(header[8:16], "big")
            elif box == 0:  # box runs to the end of the file
                return False
            if box < 8:
                return False  # not a box structure we understand: let the decoder judge
            offset += box
        return offset > size


def _open_video(path: Path):
    """Open a container, turning every failure into an `UnreadableInput` with a reason."""
    if not path.exists():
        raise UnreadableInput(path, "missing file")
    if path.stat().st_size == 0:
        raise UnreadableInput(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        if _mp4_truncated(path):
            raise UnreadableInput(path, f"truncated file (container cut short: {error})")
        with open(path, "rb") as handle:
            head = handle.read(12)
        is_media = (head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"  # mp4, mkv/webm
                    or (head[:4] == b"RIFF" and head[8:12] == b"AVI ") or head[:3] == b"FLV")
        if is_media:
            raise UnreadableInput(path, f"corrupt container ({error})")
        raise UnreadableInput(path, f"not a video (ffmpeg cannot read it: {error})")
    if not container.streams.video:
        n_streams = len(container.streams)
        container.close()
        if n_streams == 0:
            raise UnreadableInput(path, "corrupt container (no readable stream)")
        raise UnreadableInput(path, "no video stream")
    return container


def frame_rate(path) -> float | None:
    """Frames per second of a video's first video stream (None if the container has none).

    Raises:
        UnreadableInput: as `read_video_frames`, for a file that does not open.
    """
    with _open_video(Path(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def _count_frames(path: Path) -> int:
    """Count video packets by demuxing (no decoding).

    `stream.frames` comes from the container header: 0 for formats that do not store it
    (webm, some avi) and wrong for files cut short, so we count what is really there.
    """
    with _open_video(path) as container:
        stream = container.streams.video[0]
        count = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    count += 1
        except av.error.FFmpegError as error:
            log.warning("%s: demuxing stopped after %d packets (%s)", path, count, error)
    return count


def _decode(path: Path, wanted: np.ndarray, max_side: int | None):
    """Decode frames in presentation order; keep those whose number is in `wanted`.

    Returns (frames list, numbers list, frames decoded, decode errors). Stops after the last
    wanted frame, so only the prefix of the video that is needed gets decoded.
    """
    wanted_set = set(int(i) for i in wanted)
    last = int(wanted[-1]) if len(wanted) else -1
    frames, numbers, errors, position = [], [], 0, 0
    size = None
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads: decoding is the costly part
        packets = container.demux(stream)
        done = False
        while not done:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:
                errors += 1
                break
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                errors += 1
                continue
            for frame in decoded:
                if position in wanted_set:
                    if size is None:  # the first kept frame fixes the size (frames must stack)
                        size = _target_size(frame.width, frame.height, max_side)
                    width, height = size
                    frames.append(frame.to_ndarray(format="rgb24", width=width, height=height,
                                                   interpolation="AREA"))
                    numbers.append(position)
                position += 1
                if position > last:
                    done = True
                    break
    return frames, numbers, position, errors


def read_video_frames(path, n: int, max_side: int | None = None):
    """Decode n frames spread uniformly over a video.

    Arguments:
        path: video file.
        n: frames wanted (all frames if the video has fewer).
        max_side: downscale frames whose longer side exceeds this (keeps aspect); None or 0
            keeps the decoded size.

    Returns:
        (frames, indices, total): uint8 RGB (T,H,W,3), int64 (T,) frame numbers, and the
        number of frames the video really holds.

    Raises:
        UnreadableInput: missing, empty (0 bytes), truncated, corrupt, not a video, no video
            stream, no frames, or most frames failing to decode; `.reason` says which.
    """
    path = Path(path)
    total = _count_frames(path)
    if total == 0:
        raise UnreadableInput(path, "no frames (video stream holds no frames)")
    wanted = sample_indices(total, n)
    frames, numbers, decoded, errors = _decode(path, wanted, max_side)
    if decoded < total and len(numbers) < len(wanted):
        # fewer decodable frames than packets (damaged tail, dropped frames): resample over
        # what really decodes, once
        if decoded == 0:
            raise UnreadableInput(path, f"corrupt video: none of {total} frames decodes "
                                        f"({errors} decode errors)")
        log.warning("%s: %d packets but only %d frames decode; resampling", path, total,
                    decoded)
        total = decoded
        wanted = sample_indices(total, n)
        frames, numbers, decoded, errors = _decode(path, wanted, max_side)
    if not frames:
        raise UnreadableInput(path, f"corrupt video: no frame decodes ({errors} errors)")
    if errors > total // 2:
        raise UnreadableInput(path, f"corrupt video: {errors} decode errors in {total} frames")
    if errors:
        log.warning("%s: %d decode errors, kept %d frames", path, errors, len(frames))
    return np.stack(frames), np.asarray(numbers, np.int64), int(total)


def _natural_key(name: str):
    """Sort key that orders `2.png` before `10.png`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _sequence_members(tar: tarfile.TarFile, member: str) -> list[tarfile.TarInfo]:
    """PNG files directly inside folder `member` of the archive, in natural name order."""
    prefix = member.strip("/") + "/"
    found = [
        info for info in tar.getmembers()
        if info.isfile() and info.name.lstrip("./").startswith(prefix)
        and "/" not in info.name.lstrip("./")[len(prefix):]
        and info.name.lower().endswith(".png")
    ]
    return sorted(found, key=lambda info: _natural_key(os.path.basename(info.name)))


def read_sequence_frames(archive, member: str, n: int, max_side: int | None = None):
    """Read n PNG frames spread uniformly over a WildDeepfake sequence inside a .tar.gz.

    Description:
        Frame names are sorted naturally (`2.png` before `10.png`); frame numbers are
        positions in that order. Frames are resized to the size of the first readable
        sampled frame (WildDeepfake crops vary slightly in size from frame to frame, and a
        video's frames must stack), after the `max_side` bound.

    Arguments:
        archive: path of the .tar.gz, or an open `tarfile.TarFile` (lets a caller read many
            sequences of one archive without re-listing it).
        member: folder inside the archive holding the sequence's PNG files.
        n: frames wanted.
        max_side: downscale bound as in `read_video_frames`.

    Returns:
        (frames, indices, total, bad): uint8 RGB (T,H,W,3), int64 (T,), number of PNG files,
        and a list of (frame number, reason) for sampled PNGs that could not be read.

    Raises:
        UnreadableInput: the archive cannot be opened, holds no PNG in `member`, or no
            sampled PNG is readable.

    References:
        WildDeepfake layout: docs/datasets.md.
    """
    if isinstance(archive, tarfile.TarFile):
        path = Path(archive.name or "archive")
        try:
            return _read_sequence(archive, path, member, n, max_side)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
            raise UnreadableInput(path, f"unreadable archive ({error})") from error
    path = Path(archive)
    with _open_archive(str(path)) as tar:
        try:
            return _read_sequence(tar, path, member, n, max_side)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
            raise UnreadableInput(path, f"unreadable archive ({error})") from error


def _read_sequence(tar, path: Path, member: str, n: int, max_side: int | None):
    where = f"{path}:{member}"
    infos = _sequence_members(tar, member)
    if not infos:
        raise UnreadableInput(where, "no PNG frames in the sequence folder")
    wanted = sample_indices(len(infos), n)
    frames, numbers, bad = [], [], []
    size = None
    for index in wanted:  # archive order = name order, so this reads forward
        info = infos[int(index)]
        handle = tar.extractfile(info)
        data = handle.read() if handle is not None else b""
        image = None
        if data[:8] == _PNG_SIGNATURE:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            reason = "empty PNG" if not data else "unreadable PNG"
            bad.append((int(index), f"{reason} {os.path.basename(info.name)}"))
            continue
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if size is None:
            size = _target_size(image.shape[1], image.shape[0], max_side)
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        frames.append(image)
        numbers.append(int(index))
    if not frames:
        raise UnreadableInput(where, f"none of {len(wanted)} sampled PNG frames is readable")
    return np.stack(frames), np.asarray(numbers, np.int64), len(infos), bad


def select_shard(manifest: pd.DataFrame, dataset: str, compression: str, shard: int,
                 n_shards: int) -> pd.DataFrame:
    """Rows of one faceset shard, in manifest order.

    Arguments:
        manifest: the dataset's manifest (docs/architecture.md, "Manifest").
        dataset: layout name (`ffpp`, `celebdf`, `dfdc`, `wilddeepfake`).
        compression: `c23`/`c40`/`raw` for FF++, `none` otherwise.
        shard, n_shards: which shard of how many.
    """
    if not 0 <= shard < n_shards:
        raise DamlError(f"shard {shard} is outside 0..{n_shards - 1}: fix the n_shards setting "
                        "or the shard wildcard")
    rows = manifest[(manifest["dataset"] == dataset)
                    & (manifest["compression"].astype(str) == str(compression))]
    keep = rows["key"].map(lambda key: shard_of(str(key), n_shards) == shard)
    return rows[keep].reset_index(drop=True)


def extract_shard(manifest_csv, out_dir, dataset: str, compression: str, shard: int,
                  n_shards: int, settings: FrameSettings) -> pd.DataFrame:
    """Decode and sample the frames of every video of one shard into a frames folder.

    Description:
        Streams the shard's videos one at a time (peak memory: one video's sampled
        frames) and writes the folder format of docs/architecture.md ("Frames"), plus the
        shard's `manifest.csv`. A bad video becomes an `index.csv` row with status
        `skipped` and its reason, never a crash. The folder is built under a temporary
        name beside `out_dir` and renamed to it at the end, so a killed job leaves no
        folder that looks complete.

    Arguments:
        manifest_csv: `results/data/{dataset}/manifest.csv`.
        out_dir: `results/frames/{faceset}/shard{shard}` (replaced if it exists).
        dataset, compression: the faceset (`compression` is `none` outside FF++).
        shard, n_shards: which shard of how many.
        settings: `FrameSettings`.

    Returns:
        The index table that was written.
    """
    manifest_csv, out_dir = Path(manifest_csv), Path(out_dir)
    try:
        manifest = pd.read_csv(manifest_csv, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as error:
        raise DamlError(f"{manifest_csv}: cannot read the manifest ({error}); rerun the "
                        "index_dataset rule") from error
    missing = {"key", "dataset", "compression", "path", "member"} - set(manifest.columns)
    if missing:
        raise DamlError(f"{manifest_csv}: manifest lacks columns {sorted(missing)}; rerun "
                        "the index_dataset rule")
    rows = select_shard(manifest, dataset, compression, shard, n_shards)
    save = np.savez_compressed if settings.compress else np.savez
    index = []
    archives: dict[str, tarfile.TarFile | UnreadableInput] = {}
    try:
        with atomic_folder(out_dir) as tmp:
            for number, row in enumerate(tqdm(rows.itertuples(index=False), total=len(rows),
                                              desc=f"frames {dataset} shard {shard}",
                                              unit="video")):
                name = f"{number:04d}.npz"
                bad: list = []
                try:
                    if row.member:
                        if row.path not in archives:  # rows of one archive are usually adjacent
                            for opened in archives.values():
                                if isinstance(opened, tarfile.TarFile):
                                    opened.close()
                            archives.clear()
                            try:
                                archives[row.path] = _open_archive(row.path)
                            except UnreadableInput as error:
                                archives[row.path] = error
                        tar = archives[row.path]
                        if isinstance(tar, UnreadableInput):
                            raise tar
                        frames, indices, total, bad = read_sequence_frames(
                            tar, row.member, settings.per_video, settings.max_side)
                    else:
                        frames, indices, total = read_video_frames(
                            row.path, settings.per_video, settings.max_side)
                except UnreadableInput as error:
                    log.warning("skipping %s: %s", row.key, error.reason)
                    index.append([row.key, "", 0, 0, "skipped", error.reason])
                    continue
                arrays = {"frames": frames, "indices": indices}
                if bad:
                    arrays["bad_indices"] = np.asarray([b[0] for b in bad], np.int64)
                    arrays["bad_reasons"] = np.asarray([b[1] for b in bad], dtype=str)
                save(tmp / name, **arrays)
                reason = "; ".join(b[1] for b in bad)
                index.append([row.key, name, len(indices), total, "ok", reason])
                del frames, arrays
            table = pd.DataFrame(index, columns=INDEX_COLUMNS)
            table.to_csv(tmp / "index.csv", index=False)
            rows.to_csv(tmp / "manifest.csv", index=False)
    finally:
        for opened in archives.values():
            if isinstance(opened, tarfile.TarFile):
                opened.close()
    skipped = int((table["status"] == "skipped").sum())
    log.info("%s shard %d: %d videos, %d skipped -> %s", dataset, shard, len(table), skipped,
             out_dir)
    return table


def _open_archive(path: str) -> tarfile.TarFile:
    """Open a .tar.gz, turning failures into `UnreadableInput`."""
    if not Path(path).exists():
        raise UnreadableInput(path, "missing file")
    if Path(path).stat().st_size == 0:
        raise UnreadableInput(path, "empty file (0 bytes)")
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise UnreadableInput(path, f"unreadable archive ({error})") from error
