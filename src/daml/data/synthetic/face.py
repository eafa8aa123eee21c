"""Procedurally drawn talking faces with ground-truth landmarks.

Description:
    The embedded benchmark needs faces that the real pretrained RetinaFace detects and aligns,
    with known landmarks, and identities that differ from each other. A face is drawn with
    OpenCV's anti-aliased primitives in a face-local frame (a similarity transform of unit
    coordinates plus a small pseudo-3D yaw): hair behind the head, shoulders and neck, ears, a
    skin ellipse, brows, eyes with iris and pupil (lids close when blinking), a nose with a tip
    shadow, lips that open to a dark mouth with teeth, and a fringe. `Identity` holds what stays
    fixed for a person (drawn from a seed), `Motion` what changes per frame (head position,
    roll, yaw, blink, mouth opening), and `talking_motion` draws a smooth per-frame sequence.

    Landmarks come in RetinaFace's order as `retinaface.detect_faces` returns them on these
    faces (checked with tests/unit/test_synthetic.py): image-left eye, image-right eye, nose
    tip, image-left mouth corner, image-right mouth corner.

Example:
    >>> rng = np.random.default_rng(0)
    >>> person = Identity.sample(rng)
    >>> motions = talking_motion(rng, n_frames=16, fps=25.0, cx=0.5, cy=0.5, size=0.3)
    >>> image, landmarks = render_face(person, motions[0], 160, 120)
    >>> image.shape, landmarks.shape
    ((120, 160, 3), (5, 2))
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

__all__ = [
    "Identity",
    "Motion",
    "talking_motion",
    "render_face",
    "draw_face",
    "face_landmarks",
    "region_mask",
    "make_background",
    "LANDMARK_NAMES",
]

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT

# Skin tones (RGB) spanning light to dark; an identity's tone is a random mix of two neighbours.
_SKIN = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 135], [198, 140, 100], [160, 110, 75],
     [132, 90, 62], [108, 72, 50]],
    dtype=np.float64,
)
_HAIR = np.array(
    [[20, 16, 14], [60, 40, 25], [110, 75, 40], [170, 120, 60], [215, 185, 120], [140, 50, 25],
     [120, 120, 120]],
    dtype=np.float64,
)
_IRIS = np.array([[70, 45, 25], [110, 80, 40], [60, 110, 160], [80, 120, 70], [40, 30, 25]],
                 dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Identity:
    """What stays fixed for one synthetic person.

    Lengths are in face units: the face ellipse has half-width `face_width` and half-height 1.
    Vertical positions run from -1 (top of the face) to +1 (chin). Colours are RGB 0-255.

    Arguments:
        skin: skin colour.
        face_width: half-width of the face ellipse relative to its half-height.
        eye_spacing: horizontal distance of each eye centre from the midline (face units).
        eye_height: vertical position of the eyes.
        eye_size: half-width of an eye.
        iris: iris colour.
        brow_thickness: brow thickness (face units).
        nose_length: vertical position of the nose tip.
        mouth_height: vertical position of the mouth.
        mouth_width: half-width of the mouth (corner to midline).
        lips: lip colour.
        hair: hair colour.
        hair_style: 0 short, 1 long (down the sides), 2 high crown.
        shirt: clothing colour.
    """

    skin: tuple[float, float, float]
    face_width: float
    eye_spacing: float
    eye_height: float
    eye_size: float
    iris: tuple[float, float, float]
    brow_thickness: float
    nose_length: float
    mouth_height: float
    mouth_width: float
    lips: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: int
    shirt: tuple[float, float, float]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Identity":
        """Draw an identity.

        Arguments:
            rng: the generator; the same generator state gives the same identity.

        Returns:
            A new `Identity`.
        """
        i = rng.integers(0, len(_SKIN) - 1)
        t = rng.uniform()
        skin = (1 - t) * _SKIN[i] + t * _SKIN[i + 1]
        lips = np.clip(skin * np.array([0.85, 0.55, 0.55]) + rng.uniform(-10, 10, 3), 0, 255)
        hair = np.clip(_HAIR[rng.integers(len(_HAIR))] + rng.uniform(-15, 15, 3), 0, 255)
        if abs(_luma(hair) - _luma(skin)) < 50:  # hair lighter or darker than skin, as mostly
            hair = hair * 0.3
        iris = np.clip(_IRIS[rng.integers(len(_IRIS))] + rng.uniform(-10, 10, 3), 0, 255)
        shirt = rng.uniform(30, 230, 3)
        return cls(
            skin=_rgb(skin),
            face_width=float(rng.uniform(0.70, 0.84)),
            eye_spacing=float(rng.uniform(0.34, 0.44)),
            eye_height=float(rng.uniform(-0.22, -0.10)),
            eye_size=float(rng.uniform(0.15, 0.20)),
            iris=_rgb(iris),
            brow_thickness=float(rng.uniform(0.05, 0.09)),
            nose_length=float(rng.uniform(0.16, 0.28)),
            mouth_height=float(rng.uniform(0.50, 0.60)),
            mouth_width=float(rng.uniform(0.26, 0.36)),
            lips=_rgb(lips),
            hair=_rgb(hair),
            hair_style=int(rng.integers(0, 3)),
            shirt=_rgb(shirt),
        )


@dataclasses.dataclass(frozen=True)
class Motion:
    """What changes from frame to frame.

    Arguments:
        cx: face centre x as a fraction of the frame width.
        cy: face centre y as a fraction of the frame height.
        size: face half-height as a fraction of the frame height.
        roll: in-plane head rotation in degrees (positive turns clockwise on screen).
        yaw: pseudo-3D head turn in [-1, 1]; inner features shift sideways by up to 12% of
            the face width.
        blink: eyelid closure in [0, 1] (1 = closed).
        mouth_open: mouth opening in [0, 1].
    """

    cx: float
    cy: float
    size: float
    roll: float
    yaw: float
    blink: float
    mouth_open: float


def talking_motion(rng: np.random.Generator, n_frames: int, fps: float, cx: float, cy: float,
                   size: float) -> list[Motion]:
    """Draw a smooth head-motion, blinking and speaking sequence for one video.

    Arguments:
        rng: the generator.
        n_frames: number of frames.
        fps: frame rate (motion speeds are in seconds, so a longer video moves the same way).
        cx, cy, size: the resting face placement (see `Motion`).

    Returns:
        One `Motion` per frame.
    """
    t = np.arange(n_frames) / fps

    def wave(amplitude: float, low: float, high: float) -> np.ndarray:
        freq = rng.uniform(low, high)
        return amplitude * np.sin(2 * math.pi * freq * t + rng.uniform(0, 2 * math.pi))

    dx = wave(0.02, 0.2, 0.6) + wave(0.01, 0.7, 1.5)
    dy = wave(0.015, 0.2, 0.6)
    roll = wave(4.0, 0.2, 0.7)
    yaw = wave(0.35, 0.15, 0.5)
    speech = np.clip(0.5 + wave(0.5, 2.0, 4.0) + wave(0.25, 4.0, 7.0), 0, 1)
    blink = np.zeros(n_frames)
    next_blink = rng.uniform(0.1, 1.0)
    while n_frames and next_blink < t[-1] + 0.2:
        blink += np.clip(1 - np.abs(t - next_blink) / 0.12, 0, 1)
        next_blink += rng.uniform(1.5, 4.0)
    blink = np.clip(blink, 0, 1)
    return [
        Motion(cx=float(cx + dx[k]), cy=float(cy + dy[k]), size=float(size), roll=float(roll[k]),
               yaw=float(yaw[k]), blink=float(blink[k]), mouth_open=float(speech[k]))
        for k in range(n_frames)
    ]


def make_background(rng: np.random.Generator, width: int, height: int,
                    palette: tuple[tuple[float, float, float], tuple[float, float, float]] = (
                        (60, 70, 90), (200, 190, 170)),
                    n_shapes: int = 6) -> np.ndarray:
    """Draw a background: a vertical gradient between two random colours plus blurred shapes.

    Arguments:
        rng: the generator.
        width, height: frame size in pixels.
        palette: two RGB colours; the gradient's colours are drawn between them.
        n_shapes: number of rectangles and discs drawn on top (furniture, windows, ...).

    Returns:
        uint8 RGB image (height, width, 3).
    """
    low, high = np.asarray(palette[0], float), np.asarray(palette[1], float)
    top = rng.uniform(low, high)
    bottom = rng.uniform(low, high)
    ramp = np.linspace(0, 1, height)[:, None, None]
    image = ((1 - ramp) * top + ramp * bottom) * np.ones((1, width, 1))
    image = image.astype(np.uint8)
    for _ in range(n_shapes):
        colour = _rgb(rng.uniform(low, high))
        if rng.uniform() < 0.5:
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            x1, y1 = x0 + rng.integers(width // 10, width // 2), y0 + rng.integers(height // 10,
                                                                                    height // 2)
            cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), colour, -1, cv2.LINE_AA)
        else:
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(image, centre, int(rng.integers(height // 12, height // 4)), colour, -1,
                       cv2.LINE_AA)
    return cv2.GaussianBlur(image, (0, 0), 1.5)


class _Frame:
    """Maps face units to pixels for one identity in one pose."""

    def __init__(self, identity: Identity, motion: Motion, width: int, height: int):
        self.r = motion.size * height  # pixels per face unit (face half-height)
        self.cx = motion.cx * width
        self.cy = motion.cy * height
        self.theta = math.radians(motion.roll)
        self.yaw = motion.yaw
        self.fw = identity.face_width

    def point(self, u: float, v: float, depth: float = 1.0) -> tuple[float, float]:
        """Pixel position of face point (u, v); `depth` scales the yaw shift (nose > eyes)."""
        x = (u + 0.12 * self.yaw * self.fw * depth) * self.r
        y = v * self.r
        c, s = math.cos(self.theta), math.sin(self.theta)
        return self.cx + c * x - s * y, self.cy + s * x + c * y

    def ellipse(self, image, u, v, a, b, colour, depth=1.0, angle=0.0, start=0, end=360,
                thickness=-1):
        """Draw an ellipse centred on face point (u, v) with half-axes a, b in face units."""
        x, y = self.point(u, v, depth)
        axes = (max(1, int(a * self.r * _ONE)), max(1, int(b * self.r * _ONE)))
        cv2.ellipse(image, (int(round(x * _ONE)), int(round(y * _ONE))), axes,
                    math.degrees(self.theta) + angle, start, end, colour,
                    thickness if thickness < 0 else max(1, int(round(thickness * self.r))),
                    cv2.LINE_AA, _SHIFT)

    def polygon(self, image, points, colour, depth=1.0):
        """Fill a polygon given in face units."""
        pts = np.array([self.point(u, v, depth) for u, v in points]) * _ONE
        cv2.fillPoly(image, [np.round(pts).astype(np.int32)], colour, cv2.LINE_AA, _SHIFT)


def face_landmarks(identity: Identity, motion: Motion, width: int, height: int) -> np.ndarray:
    """Ground-truth 5 landmarks in pixels, RetinaFace's order (see module docstring).

    Arguments:
        identity, motion: the face and its pose.
        width, height: frame size.

    Returns:
        float32 array (5, 2) of (x, y).
    """
    f = _Frame(identity, motion, width, height)
    i = identity
    pts = [
        f.point(-i.eye_spacing, i.eye_height, 0.8),
        f.point(i.eye_spacing, i.eye_height, 0.8),
        f.point(0.0, i.nose_length, 1.6),
        f.point(-i.mouth_width, i.mouth_height, 1.0),
        f.point(i.mouth_width, i.mouth_height, 1.0),
    ]
    return np.asarray(pts, dtype=np.float32)


def draw_face(image: np.ndarray, identity: Identity, motion: Motion) -> np.ndarray:
    """Draw a face onto `image` in place.

    Arguments:
        image: uint8 RGB (H, W, 3), modified in place.
        identity, motion: the face and its pose.

    Returns:
        The landmarks, as `face_landmarks`.
    """
    height, width = image.shape[:2]
    f = _Frame(identity, motion, width, height)
    i = identity
    skin = np.asarray(i.skin, float)
    shade = _rgb(skin * 0.82)
    hair = i.hair
    # body: shoulders and neck
    f.ellipse(image, 0.0, 2.35, 1.9, 0.95, i.shirt, depth=-0.3)
    f.polygon(image, [(-0.36, 0.6), (0.36, 0.6), (0.42, 1.55), (-0.42, 1.55)], shade, depth=-0.2)
    # hair behind the head
    if i.hair_style == 1:
        f.polygon(image, [(-i.face_width - 0.22, -0.3), (i.face_width + 0.22, -0.3),
                          (i.face_width + 0.25, 1.1), (-i.face_width - 0.25, 1.1)], hair, 0.0)
    top, crown = (-0.42, 1.08) if i.hair_style == 2 else (-0.3, 0.94)
    f.ellipse(image, 0.0, top, i.face_width + 0.1, crown, hair, depth=0.0)
    # ears
    for side in (-1, 1):
        f.ellipse(image, side * (i.face_width - 0.02), 0.02, 0.12, 0.2, shade, depth=0.0)
    # face, with a slightly darker jaw contour
    f.ellipse(image, 0.0, 0.0, i.face_width, 1.0, shade, depth=0.0)
    f.ellipse(image, 0.0, -0.02, i.face_width - 0.04, 0.96, i.skin, depth=0.0)
    # fringe: the top of the face covered by hair
    f.ellipse(image, 0.0, -0.95, i.face_width * 0.98, 0.42, hair, depth=0.1, start=0, end=360)
    # brows
    for side in (-1, 1):
        f.ellipse(image, side * i.eye_spacing, i.eye_height - 0.15, i.eye_size * 1.15, 0.08,
                  _rgb(np.asarray(hair) * 0.8), depth=0.8, start=200, end=340,
                  thickness=i.brow_thickness)
    # eyes: white, iris and pupil clipped to the open lid
    open_ = 1.0 - 0.9 * motion.blink
    eye_layer = image.copy()
    mask = np.zeros(image.shape[:2], np.uint8)
    for side in (-1, 1):
        u = side * i.eye_spacing
        f.ellipse(image, u, i.eye_height, i.eye_size * 1.12, 0.1 * open_ + 0.03, shade, 0.8)
        f.ellipse(eye_layer, u, i.eye_height, i.eye_size, 0.085, (245, 245, 240), 0.8)
        f.ellipse(eye_layer, u, i.eye_height, 0.075, 0.075, i.iris, 0.9)
        f.ellipse(eye_layer, u, i.eye_height, 0.035, 0.035, (10, 10, 10), 0.95)
        f.ellipse(eye_layer, u + 0.02, i.eye_height - 0.025, 0.014, 0.014, (255, 255, 255), 0.95)
        f.ellipse(mask, u, i.eye_height, i.eye_size, 0.085 * open_, 255, 0.8)
    alpha = mask[..., None].astype(np.float32) / 255.0
    image[:] = (image * (1 - alpha) + eye_layer * alpha + 0.5).astype(np.uint8)
    for side in (-1, 1):  # upper lash line
        f.ellipse(image, side * i.eye_spacing, i.eye_height, i.eye_size, 0.085 * open_,
                  (40, 30, 30), 0.8, start=180, end=360, thickness=0.025)
    # nose: a bridge shadow and the tip with nostrils
    f.polygon(image, [(-0.03, i.eye_height + 0.05), (0.03, i.eye_height + 0.05),
                      (0.08, i.nose_length - 0.02), (-0.08, i.nose_length - 0.02)], shade, 1.3)
    f.ellipse(image, 0.0, i.nose_length, 0.11, 0.065, _rgb(skin * 0.9), depth=1.6)
    for side in (-1, 1):
        f.ellipse(image, side * 0.06, i.nose_length + 0.035, 0.03, 0.018, _rgb(skin * 0.45), 1.6)
    # mouth: lips, then the dark opening with teeth
    gap = 0.02 + 0.10 * motion.mouth_open
    f.ellipse(image, 0.0, i.mouth_height, i.mouth_width, 0.05 + gap * 0.6, i.lips, 1.0)
    f.ellipse(image, 0.0, i.mouth_height, i.mouth_width * 0.8, gap * 0.55, (45, 15, 20), 1.0)
    if motion.mouth_open > 0.2:
        f.ellipse(image, 0.0, i.mouth_height - gap * 0.35, i.mouth_width * 0.55, gap * 0.18,
                  (235, 235, 225), 1.0)
    return face_landmarks(identity, motion, width, height)


def render_face(identity: Identity, motion: Motion, width: int, height: int,
                background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame of a face.

    Arguments:
        identity: who is shown.
        motion: pose and expression in this frame.
        width, height: frame size in pixels.
        background: uint8 RGB (height, width, 3) drawn behind the face (not modified); a flat
            grey when None.

    Returns:
        (image, landmarks): uint8 RGB (height, width, 3) and float32 (5, 2) pixel coordinates
        in RetinaFace's order.
    """
    if background is None:
        image = np.full((height, width, 3), 128, np.uint8)
    else:
        image = np.array(background, dtype=np.uint8, copy=True)
    landmarks = draw_face(image, identity, motion)
    return image, landmarks


def region_mask(identity: Identity, motion: Motion, width: int, height: int,
                region: str) -> np.ndarray:
    """A soft mask of a face region, for the manipulations.

    Arguments:
        identity, motion: the face and its pose.
        width, height: frame size.
        region: "face" (the skin ellipse), "inner" (brows to chin, cheek to cheek: what
            face-swap methods replace) or "mouth" (lips and a margin around them).

    Returns:
        float32 (height, width) in [0, 1] with anti-aliased edges.
    """
    mask = np.zeros((height, width), np.uint8)
    f = _Frame(identity, motion, width, height)
    i = identity
    if region == "face":
        f.ellipse(mask, 0.0, 0.0, i.face_width, 1.0, 255, depth=0.0)
    elif region == "inner":
        f.ellipse(mask, 0.0, 0.16, i.face_width * 0.86, 0.72, 255, depth=0.6)
    elif region == "mouth":
        f.ellipse(mask, 0.0, i.mouth_height, i.mouth_width + 0.1, 0.22, 255, depth=1.0)
    else:
        raise ValueError(f"unknown region {region!r}: use 'face', 'inner' or 'mouth'")
    return mask.astype(np.float32) / 255.0


def _luma(colour) -> float:
    return float(np.dot(np.asarray(colour, float), [0.299, 0.587, 0.114]))


def _rgb(colour) -> tuple[float, float, float]:
    return tuple(float(round(c)) for c in np.clip(np.asarray(colour, float), 0, 255))
