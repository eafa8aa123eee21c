"""Writing frames as the real datasets store them: H.264 MP4 files and tarred PNG sequences.

Description:
    `write_mp4` encodes with PyAV's bundled libx264 at a constant rate factor, single-threaded
    so that the same frames give the same bitstream. `write_png_tar` packs PNG sequences into a
    gzipped tar with fixed metadata (mtime 0, no owner), so the same frames give the same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import av
import cv2
import numpy as np

__all__ = ["write_mp4", "write_png_tar", "encode_png"]


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: int, crf: int) -> None:
    """Encode frames as an H.264 MP4 (yuv420p).

    Arguments:
        path: destination; its folder must exist. Written in place: callers write into a
            temporary dataset folder that is renamed when complete.
        frames: uint8 RGB (T, H, W, 3), H and W even.
        fps: frame rate.
        crf: x264 constant rate factor (FF++: 23 for c23, 40 for c40).
    """
    _, height, width, _ = frames.shape
    with av.open(os.fspath(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.thread_count = 1
        # x264's macroblock-tree rate control gave different bitstreams for the same frames
        # on our machines (even single-threaded); without it the output is reproducible
        stream.options = {"crf": str(crf), "threads": "1", "preset": "medium",
                          "x264-params": "mbtree=0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB image."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return data.tobytes()


def write_png_tar(path: str | os.PathLike, members: dict[str, list[np.ndarray]]) -> None:
    """Write PNG sequences into a .tar.gz, one folder per sequence.

    Arguments:
        path: destination .tar.gz (folder must exist).
        members: folder inside the archive (e.g. "3/real/0") -> frames (uint8 RGB), stored as
            "<folder>/<index>.png" with index 0, 1, ...
    """
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                  filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders = set()
        for folder, frames in members.items():
            parts = Path(folder).parts
            for depth in range(1, len(parts) + 1):
                name = "/".join(parts[:depth])
                if name not in folders:
                    folders.add(name)
                    tar.addfile(_info(name, tarfile.DIRTYPE, 0))
            for index, frame in enumerate(frames):
                data = encode_png(frame)
                tar.addfile(_info(f"{folder}/{index}.png", tarfile.REGTYPE, len(data)),
                            io.BytesIO(data))


def _info(name: str, kind: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime = kind, size, 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
