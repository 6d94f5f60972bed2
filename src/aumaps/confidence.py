"""How far a face's row can be trusted: OpenFace's ``confidence``, calibrated on landmark error.

OpenFace's ``confidence`` (0–1) is its landmark tracker's certainty, and its users keep rows
from 0.8 or 0.9 up. aumaps computes one for every face on every frame, detected or tracked,
from two cheap checks of the 68 landmarks against the image (:class:`LandmarkConfidence`):

* **recheck** — the landmark predictor is run again from a box derived from the landmarks
  themselves (the box a detector would draw around such a face, :data:`CHECK_BOX`, made
  smaller by :data:`CHECK_SCALE`), and the two sets are compared (mean distance over the
  inter-ocular distance, IOD). On a face the predictor comes back to the same points; on
  something that is not a face, or a face the landmarks have slipped from, it lands
  elsewhere. It costs one more predictor call (about 1–2 ms).
* **appearance** — the score of dlib's HOG face detector on the face registered by its
  landmarks (eyes and chin brought to fixed places, at a fixed size, so that one small image
  at one scale is scanned, about 1 ms): high where a face sits where the landmarks say.

(A third check, the symmetry of the registered face, added nothing to these two when it was
measured; a second recheck from a larger box added a little, for another predictor call.)
A logistic calibration (:class:`Calibration`; weights in :data:`CALIBRATION`) turns the two
into the probability that the landmarks lie within :data:`ERROR_BOUND` (10 % of the IOD, mean
point-to-point) of where they belong. It was fitted by ``benchmarks/calibrate_confidence.py``
(which refits it and prints the figures) on rows with known landmarks: synthetic faces
(:mod:`aumaps.data.synth`, exact landmarks) and two real photos moved, scaled, darkened and
blurred, analysed from good and wrong boxes and with perturbed landmarks, and landmarks placed
on things that are not faces, good and bad rows weighted equally. It is not a rescaled detector
score: the detector's raw score has its own column (``detector_score``). A row without a face
has confidence 0 (:mod:`aumaps.results`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from . import align
from .geometry import interocular_distance, landmark_extent
from .landmarks import LandmarkPredictor

__all__ = [
    "CALIBRATION",
    "CHECK_BOX",
    "CHECK_SCALE",
    "ERROR_BOUND",
    "FEATURES",
    "Calibration",
    "LandmarkConfidence",
    "check_box",
]

#: What the confidence is the probability of: a mean landmark error below this share of the
#: inter-ocular distance (outer eye corners).
ERROR_BOUND = 0.10
#: Where a face box sits around the landmarks' bounding box (centre x, y offsets and half
#: side, in units of its mean side), as dlib's detector draws it (median over faces).
CHECK_BOX = (0.0, -0.07, 0.52)
#: The recheck's box is the detector-style box shrunk by this factor.
CHECK_SCALE = 0.85
#: The calibration's inputs, in order.
FEATURES = ("recheck", "appearance")

# the HOG check: the registered face at this scale of the 256 crop, in this crop region
# (x0, y0, x1, y1), where a detector finds the face box _EXPECTED (crop coordinates)
_HOG_SCALE = 0.6
_HOG_REGION = (40.0, 30.0, 216.0, 210.0)
_EXPECTED = np.array([55.0, 45.0, 200.0, 195.0])
_HOG_FLOOR = -3.0  # scores reported down to this (dlib's adjust_threshold)


@dataclass(frozen=True)
class Calibration:
    """A logistic calibration: ``p = 1 / (1 + exp(-(w · x + b)))`` of the features
    ``x = (log10(recheck + 0.01), appearance)``, each first clipped to the range the
    calibration saw (:attr:`low`, :attr:`high`), so that no input leaves [0, 1] or reverses
    the direction of a feature. Monotone: ``p`` falls with ``recheck`` (weight ≤ 0) and rises
    with ``appearance`` (weight ≥ 0)."""

    weights: tuple[float, float]
    bias: float
    low: tuple[float, float] = (-2.0, _HOG_FLOOR)
    high: tuple[float, float] = (1.0, 3.0)

    def __post_init__(self) -> None:
        w = self.weights
        if len(w) != len(FEATURES) or not w[0] <= 0 <= w[1]:
            raise ValueError(f"a confidence calibration must fall with the recheck error and rise with "
                             f"the appearance score, got weights {w}")

    def inputs(self, features: np.ndarray) -> np.ndarray:
        """``(N, 2)`` the logistic's inputs of ``(N, 2)`` raw :data:`FEATURES` (NaN stays NaN)."""
        f = np.asarray(features, np.float64).reshape(-1, len(FEATURES))
        x = np.stack([np.log10(np.maximum(f[:, 0], 0.0) + 0.01), f[:, 1]], axis=1)
        return np.clip(x, self.low, self.high)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """``(N,)`` confidences in [0, 1] of ``(N, 2)`` features (0 where a feature is NaN)."""
        x = self.inputs(features)
        z = x @ np.asarray(self.weights) + self.bias
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
        return np.where(np.isfinite(z), p, 0.0)


#: The shipped calibration (fitted by ``benchmarks/calibrate_confidence.py``; see the module
#: docstring).
CALIBRATION = Calibration(weights=(-7.9914, 1.6783), bias=-8.1516)


def check_box(landmarks: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``(4,)`` the detector-style box (:data:`CHECK_BOX`) of ``(68, 2)`` landmarks, scaled
    about its centre."""
    centre, size = landmark_extent(np.asarray(landmarks, np.float64))
    dx, dy, half = CHECK_BOX
    middle = centre + np.array([dx, dy]) * size
    return np.concatenate([middle - half * scale * size, middle + half * scale * size])


@functools.cache
def _hog_detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


def _registered(image: np.ndarray, matrix: np.ndarray, scale: float, region: tuple[float, ...],
                size: tuple[int, int]) -> np.ndarray:
    """The part ``region`` (x0, y0, ...) of the 256 registered crop, scaled by ``scale``."""
    x0, y0 = region[0], region[1]
    to_part = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]]) @ np.vstack([matrix, [0, 0, 1]])
    return cv2.warpAffine(image, to_part, size, flags=cv2.INTER_LINEAR)


def _appearance(image: np.ndarray, matrix: np.ndarray) -> float:
    """dlib's HOG detector score where the registered face should be (floor -3)."""
    x0, y0, x1, y1 = _HOG_REGION
    part = _registered(image, matrix, _HOG_SCALE, _HOG_REGION,
                       (int((x1 - x0) * _HOG_SCALE), int((y1 - y0) * _HOG_SCALE)))
    boxes, scores, _ = _hog_detector().run(part, 0, _HOG_FLOOR)
    expected = (_EXPECTED - [x0, y0, x0, y0]) * _HOG_SCALE
    best = _HOG_FLOOR
    for box, score in zip(boxes, scores, strict=True):
        found = np.array([box.left(), box.top(), box.right(), box.bottom()], np.float64)
        low, high = np.maximum(found[:2], expected[:2]), np.minimum(found[2:], expected[2:])
        inter = float(np.prod(np.clip(high - low, 0, None)))
        union = float(np.prod(found[2:] - found[:2]) + np.prod(expected[2:] - expected[:2])) - inter
        if inter / max(union, 1e-9) >= 0.3:
            best = max(best, float(score))
    return best


class LandmarkConfidence:
    """OpenFace-style ``confidence`` of faces' landmarks (see the module docstring).

    Args:
        predictor: the landmark predictor that placed the landmarks (it is run again).
        calibration: features → confidence.
    """

    def __init__(self, predictor: LandmarkPredictor, calibration: Calibration = CALIBRATION) -> None:
        self.predictor = predictor
        self.calibration = calibration

    def features(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``(2,)`` :data:`FEATURES` of one face's ``(68, 2)`` landmarks in an ``(H, W, 3)``
        uint8 RGB image; NaN where the landmarks cannot be checked (not finite, collinear
        eyes and chin)."""
        landmarks = np.asarray(landmarks, np.float64)
        iod = interocular_distance(landmarks) if np.isfinite(landmarks).all() else 0.0
        try:
            matrix = align.registration_matrix(landmarks)
        except ValueError:
            return np.full(len(FEATURES), np.nan)
        if iod < 1.0:
            return np.full(len(FEATURES), np.nan)
        again = self.predictor.predict(image, check_box(landmarks, CHECK_SCALE))
        recheck = float(np.linalg.norm(again - landmarks, axis=1).mean() / iod)
        return np.array([recheck, _appearance(image, matrix)])

    def __call__(self, image: np.ndarray, faces: Sequence[np.ndarray]) -> np.ndarray:
        """``(F,)`` confidences in [0, 1] of the ``(68, 2)`` landmarks of F faces of ``image``."""
        if len(faces) == 0:
            return np.zeros(0)
        return self.calibration(np.stack([self.features(image, lm) for lm in faces]))
