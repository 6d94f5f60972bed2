"""Identities: the neutral face that every rendering of a subject starts from
(:class:`Identity`), and what real-photo and drawn faces share: the outline of the head, random
per-identity face-shape offsets and random skin colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import _axes
from .looks import Look


@dataclass(frozen=True, eq=False)
class Identity:
    """A neutral face: the starting point of every rendering of one subject.

    Attributes:
        image: ``(CANVAS, CANVAS, 3)`` uint8 RGB neutral face, head roughly centred.
        landmarks: ``(68, 2)`` float64 neutral landmarks in ``image``, x, y.
        subject: Subject id (distinct identities have distinct ids).
        source: What it was made from: a :data:`REAL_FACES` name or ``"procedural"``.
        mask: ``(CANVAS, CANVAS)`` float32 in [0, 1]: the head, hair and neck (1) as opposed
            to the background (0), feathered.
        creases: How deeply this face folds: scales the strength of the drawn furrows and
            wrinkles (about 0.7–1.3).
        look: What it wears over its face at every rendering (glasses, a fringe).
    """

    image: np.ndarray
    landmarks: np.ndarray
    subject: str
    source: str
    mask: np.ndarray
    creases: float = 1.0
    look: Look = Look()


def _head_polygon(landmarks: np.ndarray, forehead: float = 0.8) -> np.ndarray:
    """Outline of the face: jaw line 0–16 then a forehead arc ``forehead`` IOD above the
    brows at the middle, ``(K, 2)``."""
    ex, ey, iod = _axes(landmarks)
    brows = landmarks[26:16:-1]  # right to left, continuing the jaw line
    t = np.linspace(1.0, -1.0, len(brows))
    rise = forehead * np.sqrt(np.clip(1.0 - 0.75 * t**2, 0.0, None))
    top = brows - iod * rise[:, None] * ey
    return np.concatenate([landmarks[:17], top])


def _shape_offsets(landmarks: np.ndarray, rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
    """Random per-identity landmark offsets (pixels, ``(68, 2)``): face width, jaw length,
    eye spacing and size, brow height, nose length and width, mouth width, height and place.
    ``spread`` scales every standard deviation."""
    ex, ey, iod = _axes(landmarks)
    g = lambda sd: rng.normal(0.0, sd * spread)  # noqa: E731 - a one-line sampler
    local = (landmarks - landmarks.mean(axis=0)) @ np.stack([ex, ey]).T / iod  # face units
    off = np.zeros((68, 2))
    jaw = np.arange(17)
    off[jaw, 0] += g(0.06) * local[jaw, 0]  # face width
    chin = np.clip(1.0 - np.abs(jaw - 8) / 6.0, 0.0, None)
    off[jaw, 1] += g(0.05) * chin  # jaw length
    eyes_and_brows = np.r_[17:27, 36:48]
    off[eyes_and_brows, 0] += g(0.025) * np.sign(local[eyes_and_brows, 0])  # eye spacing
    for eye in (np.r_[36:42], np.r_[42:48]):
        centre = local[eye].mean(axis=0)
        off[eye, 1] += g(0.12) * (local[eye, 1] - centre[1])  # eye opening
    off[17:27, 1] += g(0.025)  # brow height
    off[31:36, 1] += g(0.04)  # nose length
    off[29:31, 1] += off[31, 1] * np.array([0.4, 0.8])
    off[31:36, 0] += g(0.08) * local[31:36, 0]  # nose width
    mouth = np.r_[48:68]
    centre = local[mouth].mean(axis=0)
    off[mouth, 0] += g(0.08) * (local[mouth, 0] - centre[0])  # mouth width
    off[mouth, 1] += g(0.15) * (local[mouth, 1] - centre[1])  # lip thickness
    off[mouth, 1] += g(0.03)  # mouth height on the face
    return iod * (off[:, :1] * ex + off[:, 1:] * ey)


def _random_skin_lab(rng: np.random.Generator) -> np.ndarray:
    """A skin colour in CIE L*a*b*, from dark to light."""
    lightness = rng.uniform(32.0, 80.0)
    return np.array([lightness, rng.uniform(8.0, 20.0), rng.uniform(10.0, 28.0) - 0.05 * (lightness - 55.0)])
