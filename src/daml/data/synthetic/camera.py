"""The per-video camera look: lighting, colour cast, softness and sensor noise.

Description:
    Each dataset stand-in films its faces differently (see `domains.py`). A `Camera` is drawn
    per video and applied to every rendered frame. Lighting and colour are applied to anything
    that appears in the scene (also to a face a manipulation pastes in); blur and sensor noise
    are what a real camera adds, so a manipulation that re-renders a region without them leaves
    a trace, as generated faces do in real forgeries.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

__all__ = ["Camera", "light", "film"]


@dataclasses.dataclass(frozen=True)
class Camera:
    """One video's look.

    Arguments:
        gain: RGB multipliers (colour temperature / white balance).
        offset: added to every channel after the gain (exposure lift, negative = darker).
        side_light: brightness change from the left to the right edge of the frame, as a
            fraction (0.3 = the right edge 30% brighter than the centre, the left 30% darker).
        vignette: darkening of the corners, as a fraction.
        blur: Gaussian sigma of the lens softness in pixels (0 = none).
        noise: standard deviation of the sensor noise in grey levels.
    """

    gain: tuple[float, float, float]
    offset: float
    side_light: float
    vignette: float
    blur: float
    noise: float


def light(image: np.ndarray, camera: Camera) -> np.ndarray:
    """Apply the scene lighting and colour cast (no blur, no noise).

    Arguments:
        image: uint8 RGB (H, W, 3).
        camera: the look.

    Returns:
        float32 (H, W, 3), not clipped.
    """
    height, width = image.shape[:2]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    shading = (1.0 + camera.side_light * x) * (1.0 - camera.vignette * 0.5 * (x * x + y * y))
    out = image.astype(np.float32) * shading[..., None] * np.asarray(camera.gain, np.float32)
    return out + np.float32(camera.offset)


def film(image: np.ndarray, camera: Camera, rng: np.random.Generator,
         lit: bool = False) -> np.ndarray:
    """Film a frame: lighting (unless `lit`), lens blur, sensor noise, quantisation.

    Arguments:
        image: uint8 RGB, or float32 already passed through `light` when `lit` is True.
        camera: the look.
        rng: noise generator (one per video, so the noise is reproducible).
        lit: whether `image` is already lit.

    Returns:
        uint8 RGB (H, W, 3).
    """
    out = image.astype(np.float32) if lit else light(image, camera)
    if camera.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), camera.blur)
    if camera.noise > 0:
        out = out + rng.normal(0.0, camera.noise, out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
