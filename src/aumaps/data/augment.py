"""Training augmentation of registered crops, in the crop frame.

Every geometric augmentation is one affine applied to the 256×256 crop and to its landmarks:

* **landmark perturbation before registration** (the paper's robustness to misalignment):
  Gaussian noise, in units of the inter-ocular distance, on the landmarks; the crop is
  re-registered from the noisy anchors 8, 36, 45 while the labels keep the true landmarks;
* rotation, scaling and translation about the crop's centre;
* horizontal flip, with the landmarks re-indexed through :data:`aumaps.aus.MIRROR_68`, so
  the left/right AU centres computed from them swap sides with the image.

Photometric jitter (brightness, contrast, saturation, grayscale) follows. Each sample draws
from its own ``numpy.random.Generator``, so results do not depend on worker processes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .. import align
from ..aus import MIRROR_68
from ..geometry import interocular_distance

__all__ = ["AugmentConfig", "augment", "flip_crop", "rescale", "similarity"]


@dataclass
class AugmentConfig:
    """Augmentation strengths (0 switches one off).

    Attributes:
        rotation: maximum rotation, degrees (uniform in ±rotation).
        scale: maximum relative scale change (uniform in 1 ± scale).
        translation: maximum shift, as a fraction of the crop side.
        flip: probability of a horizontal flip.
        landmark_noise: σ of the landmark noise before re-registration, in IOD units.
        colour: strength of brightness/contrast/saturation jitter (factors in 1 ± colour).
        grayscale: probability of turning the crop gray.
    """

    rotation: float = 15.0
    scale: float = 0.1
    translation: float = 0.05
    flip: float = 0.5
    landmark_noise: float = 0.03
    colour: float = 0.2
    grayscale: float = 0.05

    @classmethod
    def from_dict(cls, cfg: dict | None) -> AugmentConfig:
        return cls(**(cfg or {}))

    def to_dict(self) -> dict:
        return asdict(self)


def similarity(angle_deg: float, scale: float, shift: tuple[float, float], size: int = align.CROP_SIZE) -> np.ndarray:
    """``(2, 3)`` rotation by ``angle_deg`` and scaling about the crop centre, then ``shift``."""
    centre = ((size - 1) / 2.0, (size - 1) / 2.0)
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    m[:, 2] += shift
    return m


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` affine ``outer ∘ inner``."""
    out = outer[:, :2] @ inner
    out[:, 2] += outer[:, 2]
    return out


def flip_crop(crop: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a crop and its ``(68, 2)`` landmarks; landmark ``i`` becomes ``MIRROR_68[i]``."""
    width = crop.shape[1]
    flipped = np.ascontiguousarray(crop[:, ::-1])
    lm = landmarks[MIRROR_68].copy()
    lm[:, 0] = (width - 1) - lm[:, 0]
    return flipped, lm


def augment(
    crop: np.ndarray,
    landmarks: np.ndarray,
    rng: np.random.Generator,
    cfg: AugmentConfig,
    out_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One random augmentation of a registered crop.

    Args:
        crop: ``(S, S, 3)`` uint8 RGB registered crop.
        landmarks: ``(68, 2)`` landmarks in crop coordinates.
        rng: the sample's random generator.
        cfg: strengths.
        out_size: side of the crop to return (default ``S``): a model trained on smaller
            crops than the cache holds gets them in the same warp (:func:`rescale`).

    Returns:
        The augmented ``(out_size, out_size, 3)`` uint8 crop and its ``(68, 2)`` landmarks.
    """
    size = crop.shape[0]
    out_size = size if out_size is None else int(out_size)
    lm = np.asarray(landmarks, dtype=np.float64)
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if cfg.landmark_noise > 0:
        iod = interocular_distance(lm)
        noisy = lm + rng.normal(0.0, cfg.landmark_noise * iod, lm.shape)
        m = align.registration_matrix(noisy, crop_size=size)
    angle = rng.uniform(-cfg.rotation, cfg.rotation) if cfg.rotation > 0 else 0.0
    scale = 1.0 + (rng.uniform(-cfg.scale, cfg.scale) if cfg.scale > 0 else 0.0)
    shift = rng.uniform(-cfg.translation, cfg.translation, 2) * size if cfg.translation > 0 else (0.0, 0.0)
    m = _compose(similarity(angle, scale, shift, size), m)
    if out_size != size:
        m = m * (out_size / size)
    out = cv2.warpAffine(crop, m, (out_size, out_size))
    lm = align.transform_points(lm, m)
    if cfg.flip > 0 and rng.random() < cfg.flip:
        out, lm = flip_crop(out, lm)
    if cfg.colour > 0 or cfg.grayscale > 0:
        out = _jitter(out, rng, cfg)
    return out, lm


def rescale(crop: np.ndarray, landmarks: np.ndarray, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A registered crop and its landmarks at another crop size: what registering the image
    straight into an ``out_size`` crop gives (the reference points scale with the crop, so the
    registration's affine is the larger one's times ``out_size / S``; bilinear, as OpenCV's
    ``warpAffine`` registers at inference)."""
    size = crop.shape[0]
    if out_size == size:
        return crop, landmarks
    f = out_size / size
    out = cv2.warpAffine(crop, np.array([[f, 0.0, 0.0], [0.0, f, 0.0]]), (out_size, out_size))
    return out, np.asarray(landmarks, dtype=np.float64) * f


_LUMA = np.array([0.299, 0.587, 0.114])


def _jitter(crop: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Grayscale (sometimes), then saturation, contrast and brightness: all linear in the RGB
    values, so they are composed into one 3x4 colour matrix applied in a single pass."""
    matrix, offset = np.eye(3), np.zeros(3)
    if cfg.grayscale > 0 and rng.random() < cfg.grayscale:
        matrix = np.repeat(_LUMA[None], 3, axis=0)
    if cfg.colour > 0:
        c = cfg.colour
        brightness, contrast, saturation = rng.uniform(1 - c, 1 + c, 3)
        gray = _LUMA @ matrix  # the luma of the (possibly grey) image, as a row over RGB
        matrix = gray[None] + saturation * (matrix - gray[None])
        grey_mean = float(gray @ np.asarray(cv2.mean(crop)[:3]))
        matrix, offset = brightness * contrast * matrix, np.full(3, brightness * (1 - contrast) * grey_mean)
    return cv2.transform(crop, np.hstack([matrix, offset[:, None]]).astype(np.float32))
