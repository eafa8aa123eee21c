"""Small real media for tests: H.264 videos, PNG bytes, tar.gz archives, manifest rows, faces.

Faces come from the procedural renderer of the embedded benchmark
(`daml.data.synthetic.face`), which gives each face's ground-truth landmarks.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np


def encode(path, frames, crf: int = 23, container_options=None, fps: int = 25):
    """Encode RGB frames with libx264 (real H.264, as the embedded benchmark does)."""
    import av  # here, not at the top: the GPU check runs the face tests where PyAV is absent

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


def face_image(seed: int, width: int = 320, height: int = 240, cx=0.5, cy=0.5, size=0.3):
    """One rendered face on a random background: (uint8 RGB image, (5, 2) true landmarks)."""
    from daml.data.synthetic.face import Identity, make_background, render_face, talking_motion

    rng = np.random.default_rng(seed)
    person = Identity.sample(rng)
    motion = talking_motion(rng, 2, 25.0, cx, cy, size)[0]
    return render_face(person, motion, width, height, make_background(rng, width, height))


def two_face_scene(seed: int = 11, width: int = 480, height: int = 320):
    """A large foreground face and a small background one drawn twice over it.

    Returns:
        (image, landmarks of the large face, landmarks of the small face).
    """
    from daml.data.synthetic.face import Identity, make_background, render_face, talking_motion

    rng = np.random.default_rng(seed)
    image = make_background(rng, width, height)
    big = talking_motion(rng, 1, 25.0, 0.65, 0.5, 0.3)[0]
    small = talking_motion(rng, 1, 25.0, 0.18, 0.35, 0.14)[0]
    _, small_truth = render_face(Identity.sample(rng), small, width, height, image)
    image, _ = render_face(Identity.sample(rng), small, width, height, image)
    image, big_truth = render_face(Identity.sample(rng), big, width, height, image)
    return image, big_truth, small_truth
