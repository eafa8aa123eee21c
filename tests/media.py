"""Small real media for tests: H.264 videos, PNG bytes, tar.gz archives, manifest rows."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import av
import numpy as np


def encode(path, frames, crf: int = 23, container_options=None, fps: int = 25):
    """Encode RGB frames with libx264 (real H.264, as the embedded benchmark does)."""
    height, width = frames[0].shape[:2] if frames else (48, 64)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf)}
        if not frames:
            container.start_encoding()
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB image as PNG file content."""
    import cv2

    ok, data = cv2.imencode(".png", image[..., ::-1])
    assert ok
    return data.tobytes()


def make_tar(path, files: dict[str, bytes]):
    """A tar.gz archive holding `files` (member name -> content); its folder is created."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def manifest_rows(paths: dict, dataset="ffpp", compression="c23", member=""):
    """Manifest rows (docs/architecture.md) of real videos named by `paths` (video -> path)."""
    return [
        dict(key=f"{dataset}/{compression}/real/{video}", dataset=dataset, technique="real",
             compression=compression, video=video, split="train", label=0, path=str(path),
             member=member, target_id=video, source_id="", clip_id=video)
        for video, path in paths.items()
    ]
