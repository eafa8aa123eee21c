"""How each dataset stand-in films its faces and makes its fakes.

Description:
    Cross-dataset detection is hard in the paper because the datasets differ in capture
    (lighting, background, face scale, compression) and in how the fakes were made. The four
    `Domain`s below differ in both, while their fakes share the families of traces of FF++
    (blend seams, missing sensor noise, blur, colour mismatch), so that few-shot adaptation
    has something to transfer:

    - FF++: indoor-like backgrounds, near-neutral light, faces about 60% of the frame
      height, mild noise, H.264 at CRF 23 and 40; the four techniques of `manipulate.py`.
    - Celeb-DF: cool, bright, strongly side-lit scenes with larger faces, CRF 20; fakes are an
      improved deepfake: little blur, colour matched, wide feather, most of the sensor noise.
    - DFDC: dim, warm, vignetted, noisy and soft footage with smaller faces, CRF 30; fakes mix
      a deepfake and a face swap of mild strength (cleaner than FF++'s, so that FF++-trained
      detectors find DFDC harder than FF++ itself).
    - WildDeepfake: tight square face crops from internet video (lower resolution, JPEG
      blocking, stored as PNG); fakes drawn from all four techniques with varied strengths.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from daml.data.synthetic.camera import Camera
from daml.data.synthetic.face import Identity, make_background, talking_motion
from daml.data.synthetic.manipulate import Scene, Trace

__all__ = ["Domain", "DOMAINS", "sample_scene", "sample_trace"]


@dataclasses.dataclass(frozen=True)
class Domain:
    """One dataset stand-in's capture and forgery style.

    Arguments:
        name: dataset name.
        palette: two RGB colours bounding the background colours.
        size: (low, high) face half-height as a fraction of the frame height.
        warmth: (low, high) colour temperature: red gain 1 + w, blue gain 1 - w.
        exposure: (low, high) overall gain.
        offset: (low, high) exposure lift in grey levels.
        side_light: largest side-light strength (signed, drawn uniformly).
        vignette: corner darkening.
        blur: lens blur sigma in pixels.
        noise: sensor noise sigma in grey levels.
        crf: H.264 constant rate factor of its videos (FF++ writes 23 and 40, see
            `layouts.py`; unused for WildDeepfake, which stores PNGs).
        traces: the fake styles; a fake draws one (FF++ names one per technique).
        jitter: relative random variation of each trace strength per fake video.
    """

    name: str
    palette: tuple[tuple[float, float, float], tuple[float, float, float]]
    size: tuple[float, float]
    warmth: tuple[float, float]
    exposure: tuple[float, float]
    offset: tuple[float, float]
    side_light: float
    vignette: float
    blur: float
    noise: float
    crf: int
    traces: tuple[Trace, ...]
    jitter: float


FFPP_TRACES = (
    Trace("Deepfakes", resolution=2.5, colour=0.08, feather=0.08, noise=0.0),
    Trace("Face2Face", warp=3.0, feather=0.05, noise=0.4),
    Trace("FaceSwap", colour=0.5, feather=0.0, noise=1.0),
    Trace("NeuralTextures", resolution=2.0, texture=12.0, period=6.0, feather=0.05, noise=0.0),
)

DOMAINS = {
    "ffpp": Domain(
        name="ffpp", palette=((70, 60, 50), (210, 200, 180)), size=(0.28, 0.32),
        warmth=(-0.03, 0.05), exposure=(0.95, 1.05), offset=(-5, 5),
        side_light=0.1, vignette=0.1, blur=0.0, noise=2.5,
        crf=23, traces=FFPP_TRACES, jitter=0.15,
    ),
    "celebdf": Domain(
        name="celebdf", palette=((40, 90, 120), (150, 210, 240)), size=(0.33, 0.38),
        warmth=(-0.12, -0.04), exposure=(1.0, 1.12), offset=(0, 15),
        side_light=0.35, vignette=0.0, blur=0.0, noise=1.5,
        crf=20, jitter=0.2,
        traces=(Trace("Deepfakes", resolution=1.3, colour=0.03, feather=0.15, noise=0.7),),
    ),
    "dfdc": Domain(
        name="dfdc", palette=((20, 20, 25), (120, 100, 90)), size=(0.25, 0.28),
        warmth=(0.05, 0.15), exposure=(0.8, 0.95), offset=(-15, -5),
        side_light=0.2, vignette=0.3, blur=0.5, noise=4.0,
        crf=30, jitter=0.25,
        traces=(Trace("Deepfakes", resolution=1.5, colour=0.03, feather=0.14, noise=0.6),
                Trace("FaceSwap", colour=0.12, feather=0.04, noise=1.0)),
    ),
    "wilddeepfake": Domain(
        name="wilddeepfake", palette=((30, 30, 30), (230, 230, 230)), size=(0.36, 0.40),
        warmth=(-0.1, 0.1), exposure=(0.85, 1.15), offset=(-15, 15),
        side_light=0.25, vignette=0.0, blur=0.8, noise=3.0,
        crf=0, traces=FFPP_TRACES, jitter=0.35,
    ),
}


def sample_scene(domain: Domain, rng: np.random.Generator, identity: Identity, n_frames: int,
                 width: int, height: int, fps: float) -> Scene:
    """Draw one real video of `identity` filmed in `domain`'s style.

    Arguments:
        domain: the capture style.
        rng: the generator (background, camera, motion, noise seed).
        identity: who is filmed.
        n_frames, width, height, fps: video shape.

    Returns:
        A `Scene`.
    """
    background = make_background(rng, width, height, domain.palette)
    warmth, exposure = rng.uniform(*domain.warmth), rng.uniform(*domain.exposure)
    tint = rng.uniform(-0.02, 0.02, size=3)
    camera = Camera(
        gain=tuple(float(exposure * (w + t)) for w, t in zip((1 + warmth, 1.0, 1 - warmth), tint)),
        offset=float(rng.uniform(*domain.offset)),
        side_light=float(rng.uniform(-domain.side_light, domain.side_light)),
        vignette=domain.vignette, blur=domain.blur, noise=domain.noise,
    )
    size = float(rng.uniform(*domain.size))
    cx = 0.5 + rng.uniform(-0.06, 0.06)
    cy = 0.5 + rng.uniform(-0.04, 0.04)
    motions = talking_motion(rng, n_frames, fps, cx, cy, size)
    return Scene(identity, tuple(motions), background, camera, int(rng.integers(2**31)))


def sample_trace(domain: Domain, rng: np.random.Generator, technique: str | None = None) -> Trace:
    """Draw a fake style: one of the domain's traces, each strength jittered.

    Arguments:
        domain: the forgery style.
        rng: the generator.
        technique: pick the domain's trace of this technique; a random one when None.

    Returns:
        A `Trace`.
    """
    if technique is None:
        base = domain.traces[int(rng.integers(len(domain.traces)))]
    else:
        base = next(t for t in domain.traces if t.technique == technique)

    def scale(value: float) -> float:
        return float(value * rng.uniform(1 - domain.jitter, 1 + domain.jitter))

    return dataclasses.replace(
        base, colour=scale(base.colour), feather=scale(base.feather), warp=scale(base.warp),
        texture=scale(base.texture), noise=min(1.0, scale(base.noise)),
        resolution=max(1.0, scale(base.resolution)),
    )
