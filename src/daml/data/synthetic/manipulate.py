"""Four synthetic face manipulations standing in for FaceForensics++'s techniques.

Description:
    A `Scene` is one real video before encoding: an identity, its per-frame motion, a
    background and a camera. `film_scene` renders it. `manipulate` turns a target scene into a
    fake, frame by frame, from the real frames of the target (so a fake equals its real video
    outside the manipulated region, as in FF++) and the identity or expression of a source
    scene. Each technique leaves its own kind of trace:

    - `deepfakes`: the source identity's face at the target's pose and skin tone, generated
      at low resolution (down- then up-sampled: blurred), noise-free and colour-shifted, pasted into
      the inner face with a soft, feathered blend seam.
    - `face2face`: the target's own face re-rendered with the source's expression (mouth,
      blinks), then warped by a smooth random displacement field (bilinear resampling smears
      the sensor noise and bends the features) and pasted with a narrow feather.
    - `faceswap`: the source's filmed face (with its own sensor noise) at the target's pose,
      skin tone only partly matched, pasted with a hard-edged mask: a sharp colour step.
    - `neuraltextures`: only the mouth region re-rendered with the source's mouth opening, at
      a lower resolution and with a periodic (crossed sinusoidal gratings) texture, blended
      softly.

    `Trace` holds the strengths, so the other dataset stand-ins reuse the same techniques with
    other settings (e.g. Celeb-DF's cleaner deepfakes).

References:
    Rossler et al., "FaceForensics++: Learning to Detect Manipulated Facial Images", ICCV 2019
    (the four techniques and how fakes are made from pairs of real videos).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from daml.data.ffpp import TECHNIQUES
from daml.data.synthetic.camera import Camera, film, light
from daml.data.synthetic.face import Identity, Motion, face_landmarks, region_mask, render_face

__all__ = ["Scene", "Trace", "TECHNIQUES", "film_scene", "manipulate"]



@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
    """One real video before encoding.

    Arguments:
        identity: who is filmed.
        motions: one `Motion` per frame.
        background: uint8 RGB (H, W, 3) background.
        camera: the video's look.
        seed: seed of the sensor noise (the same seed films the same noise).
    """

    identity: Identity
    motions: tuple[Motion, ...]
    background: np.ndarray
    camera: Camera
    seed: int


@dataclasses.dataclass(frozen=True)
class Trace:
    """How strongly a manipulation shows; each technique reads the fields it names.

    Arguments:
        technique: one of `TECHNIQUES`.
        resolution: Deepfakes, NeuralTextures: factor by which the generated content is
            down-sampled before it is up-sampled again (1 = no loss of detail).
        colour: Deepfakes: size of the random colour shift of the generated face (fraction);
            FaceSwap: fraction of the skin-tone difference left uncorrected.
        feather: blend-mask softness, Gaussian sigma in face half-heights (0 = hard edge).
        warp: Face2Face: amplitude of the displacement field in pixels.
        texture: NeuralTextures: amplitude of the periodic texture in grey levels.
        period: NeuralTextures: period of the texture in pixels.
        noise: fraction of the camera's sensor noise the generated content carries.
    """

    technique: str
    resolution: float = 1.0
    colour: float = 0.0
    feather: float = 0.0
    warp: float = 0.0
    texture: float = 0.0
    period: float = 4.0
    noise: float = 0.0


def film_scene(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Render and film every frame of a real video.

    Arguments:
        scene: the video.

    Returns:
        (frames, landmarks): uint8 (T, H, W, 3) RGB and float32 (T, 5, 2).
    """
    height, width = scene.background.shape[:2]
    rng = np.random.default_rng(scene.seed)
    frames, marks = [], []
    for motion in scene.motions:
        image, landmarks = render_face(scene.identity, motion, width, height, scene.background)
        frames.append(film(image, scene.camera, rng))
        marks.append(landmarks)
    return np.stack(frames), np.stack(marks)


def manipulate(target: Scene, source: Scene, trace: Trace, seed: int,
               real: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Make a fake video of `target` from `source` with one technique.

    Arguments:
        target: the real video whose frames are manipulated.
        source: the real video that lends its identity (Deepfakes, FaceSwap) or its
            expression (Face2Face, NeuralTextures); both scenes must have as many frames.
        trace: technique and strengths.
        seed: seed of the fake's own randomness (colour shift, warp field, texture phase).
        real: the target's filmed frames, if already computed by `film_scene(target)`.

    Returns:
        (frames, landmarks): uint8 (T, H, W, 3) RGB and float32 (T, 5, 2), the landmarks of
        the face as shown (the source's features for identity swaps).
    """
    if trace.technique not in _TECHNIQUES:
        raise ValueError(f"unknown technique {trace.technique!r}: use one of {TECHNIQUES}")
    if len(source.motions) < len(target.motions):
        raise ValueError("the source scene has fewer frames than the target scene")
    if real is None:
        real = film_scene(target)[0]
    rng = np.random.default_rng(seed)
    step = _TECHNIQUES[trace.technique](target, source, trace, rng)
    frames, marks = [], []
    for k, motion in enumerate(target.motions):
        frame, landmarks = step(k, motion, real[k])
        frames.append(frame)
        marks.append(landmarks)
    return np.stack(frames), np.stack(marks)


def _clean(identity: Identity, motion: Motion, scene: Scene) -> np.ndarray:
    height, width = scene.background.shape[:2]
    return render_face(identity, motion, width, height, scene.background)[0]


def _low_resolution(image: np.ndarray, small: tuple[int, int]) -> np.ndarray:
    """What a generator working at a lower resolution gives: detail lost, edges smooth."""
    height, width = image.shape[:2]
    return cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_AREA), (width, height),
                      interpolation=cv2.INTER_LINEAR)


def _blend(real: np.ndarray, generated: np.ndarray, mask: np.ndarray, feather: float,
           size: float) -> np.ndarray:
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), feather * size)
    else:
        mask = (mask > 0.5).astype(np.float32)
    mask = mask[..., None]
    out = real.astype(np.float32) * (1 - mask) + generated * mask
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _noise(shape, camera: Camera, trace: Trace, rng: np.random.Generator) -> np.ndarray:
    if trace.noise <= 0 or camera.noise <= 0:
        return np.zeros(shape, np.float32)
    return rng.normal(0.0, camera.noise * trace.noise, shape).astype(np.float32)


def _deepfakes(target: Scene, source: Scene, trace: Trace, rng: np.random.Generator):
    direction = rng.normal(size=3)
    shift = 1.0 + trace.colour * direction / np.linalg.norm(direction)
    height, width = target.background.shape[:2]
    small = (max(1, round(width / trace.resolution)), max(1, round(height / trace.resolution)))

    # the generator learns the target's skin tone; its colour error is the random shift
    face = _with_skin(source.identity, target.identity, 0.0)

    def step(k, motion, real):
        generated = light(_clean(face, motion, target), target.camera)
        if trace.resolution > 1:
            generated = _low_resolution(generated, small)
        generated = generated * shift.astype(np.float32)
        generated += _noise(generated.shape, target.camera, trace, rng)
        mask = region_mask(target.identity, motion, width, height, "inner")
        out = _blend(real, generated, mask, trace.feather, motion.size * height)
        return out, face_landmarks(source.identity, motion, width, height)

    return step


def _faceswap(target: Scene, source: Scene, trace: Trace, rng: np.random.Generator):
    height, width = target.background.shape[:2]
    # the correction moves the source's skin towards the target's, leaving `colour` of the gap
    face = _with_skin(source.identity, target.identity, trace.colour)
    noise_rng = np.random.default_rng(source.seed)

    def step(k, motion, real):
        generated = film(_clean(face, motion, target), target.camera, noise_rng)
        generated = generated.astype(np.float32)
        mask = region_mask(target.identity, motion, width, height, "inner")
        out = _blend(real, generated, mask, trace.feather, motion.size * height)
        return out, face_landmarks(source.identity, motion, width, height)

    return step


def _with_skin(source: Identity, target: Identity, left: float) -> Identity:
    """The source identity with its skin moved to the target's, leaving `left` of the gap."""
    skin = np.asarray(target.skin) + left * (np.asarray(source.skin) - np.asarray(target.skin))
    lips = np.asarray(source.lips) * skin / np.maximum(np.asarray(source.skin), 1.0)
    return dataclasses.replace(source, skin=_rgb(skin), lips=_rgb(lips))


def _rgb(colour) -> tuple[float, float, float]:
    return tuple(float(round(c)) for c in np.clip(colour, 0, 255))


def _expression(motion: Motion, donor: Motion, mouth_only: bool) -> Motion:
    if mouth_only:
        return dataclasses.replace(motion, mouth_open=donor.mouth_open)
    return dataclasses.replace(motion, mouth_open=donor.mouth_open, blink=donor.blink)


def _face2face(target: Scene, source: Scene, trace: Trace, rng: np.random.Generator):
    height, width = target.background.shape[:2]
    # a smooth displacement field: a coarse random grid, cubic up-sampling, slow drift in time
    coarse = rng.normal(size=(2, 2, 4, 5)).astype(np.float32)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                 np.arange(height, dtype=np.float32))

    def field(k):
        phase = 0.5 + 0.5 * float(np.sin(0.3 * k))
        mix = coarse[0] * (1 - phase) + coarse[1] * phase
        up = [cv2.resize(m, (width, height), interpolation=cv2.INTER_CUBIC) for m in mix]
        return (trace.warp * up[0]).astype(np.float32), (trace.warp * up[1]).astype(np.float32)

    def step(k, motion, real):
        moved = _expression(motion, source.motions[k], mouth_only=False)
        generated = light(_clean(target.identity, moved, target), target.camera)
        generated += _noise(generated.shape, target.camera, trace, rng)
        dx, dy = field(k)
        generated = cv2.remap(generated, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        mask = region_mask(target.identity, motion, width, height, "inner")
        out = _blend(real, generated, mask, trace.feather, motion.size * height)
        return out, face_landmarks(target.identity, moved, width, height)

    return step


def _neuraltextures(target: Scene, source: Scene, trace: Trace, rng: np.random.Generator):
    height, width = target.background.shape[:2]
    angle = rng.uniform(0, np.pi)
    phase = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    along = x * np.cos(angle) + y * np.sin(angle)
    across = -x * np.sin(angle) + y * np.cos(angle)
    # two crossed gratings: a checker-like texture, the fingerprint of a learned texture map
    pattern = (np.sin(2 * np.pi * along / trace.period + phase)
               * np.sin(2 * np.pi * across / trace.period)) * trace.texture
    pattern = pattern[..., None].astype(np.float32)

    small = (max(1, round(width / trace.resolution)), max(1, round(height / trace.resolution)))

    def step(k, motion, real):
        moved = _expression(motion, source.motions[k], mouth_only=True)
        generated = light(_clean(target.identity, moved, target), target.camera)
        if trace.resolution > 1:
            generated = _low_resolution(generated, small)
        generated += pattern
        generated += _noise(generated.shape, target.camera, trace, rng)
        mask = region_mask(target.identity, motion, width, height, "mouth")
        out = _blend(real, generated, mask, trace.feather, motion.size * height)
        return out, face_landmarks(target.identity, moved, width, height)

    return step


_TECHNIQUES = {
    "Deepfakes": _deepfakes,
    "Face2Face": _face2face,
    "FaceSwap": _faceswap,
    "NeuralTextures": _neuraltextures,
}
