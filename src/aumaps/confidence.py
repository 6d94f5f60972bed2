"""How far a face's row can be trusted: OpenFace's ``confidence``, calibrated on landmark error.

OpenFace's ``confidence`` (0–1) is its landmark tracker's certainty, and its users keep rows
from 0.8 or 0.9 up. aumaps computes one for every face on every frame, detected or tracked,
from two cheap checks of the 68 landmarks against the image (:class:`LandmarkConfidence`):

* **recheck** — the landmark predictor is run again from a box derived from the landmarks
  themselves (the box a detector would draw around such a face, :data:`CHECK_BOX`, made
  smaller by :data:`CHECK_SCALE`), and the two sets are compared (mean distance over the
  inter-ocular distance, IOD). On a face the predictor comes back to the same points; on
  something that is not a face, or a face the landmarks have slipped from, it lands
  elsewhere. It costs one more predictor call.
* **appearance** — dlib's HOG face detector scans the face registered by its landmarks (eyes
  and chin brought to fixed places, at a fixed size, so that one small image is scanned). Its
  best window gives two numbers: its score (a face or not), and how far it misses
  the place where a face registered by correct landmarks is found (``miss``: 1 − the IoU of
  the window with :data:`FACE_BOX`): landmarks moved off a face register it elsewhere.

A logistic calibration (:class:`Calibration`; weights in :data:`CALIBRATION`) turns these three
numbers (:data:`FEATURES`) into the probability that the landmarks lie within
:data:`ERROR_BOUND` (10 % of the IOD, mean point-to-point) of where they belong. It was
fitted by ``benchmarks/calibrate_confidence.py`` (which refits it and prints the figures) on
rows with known landmarks: synthetic faces (:mod:`aumaps.data.synth`, exact landmarks) and two
real photos moved, scaled, darkened and blurred, analysed from good and wrong boxes and with
perturbed landmarks, and landmarks placed on things that are not faces, good and bad rows
weighted equally. Measured and left out: the symmetry of the registered face and its
correlation with a mean face (nothing beyond these), a second recheck from a larger box (a
little, for another predictor call). It is not a rescaled detector score: the detector's raw
score has its own column (``detector_score``). A row without a face has confidence 0
(:mod:`aumaps.results`).
"""

from __future__ import annotations

import functools
import threading
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
    "FACE_BOX",
    "FEATURES",
    "Calibration",
    "LandmarkConfidence",
    "check_box",
    "features_of",
]

#: What the confidence is the probability of: a mean landmark error below this share of the
#: inter-ocular distance (outer eye corners).
ERROR_BOUND = 0.10
#: Where a face box sits around the landmarks' bounding box (centre x, y offsets and half
#: side, in units of its mean side), as dlib's detector draws it (median over faces).
CHECK_BOX = (0.0, -0.07, 0.52)
#: The recheck's box is the detector-style box shrunk by this factor.
CHECK_SCALE = 0.85
#: The calibration's inputs, in order: the recheck's mean distance (IOD), the HOG score of
#: the registered face and its best window's miss (1 − IoU with :data:`FACE_BOX`).
FEATURES = ("recheck", "appearance", "miss")
#: Where dlib's HOG detector most often finds a face registered by correct landmarks, in the
#: 256 crop's coordinates: centre x, centre y, side (the commonest window of good faces in
#: the calibration rows; ``benchmarks/calibrate_confidence.py`` prints it).
FACE_BOX = (110.8, 130.0, 191.7)

# the HOG check: the registered face at this scale of the 256 crop, in this crop region
# (x0, y0, x1, y1)
_HOG_SCALE = 0.6
_HOG_REGION = (40.0, 30.0, 216.0, 210.0)
_HOG_FLOOR = -3.0  # scores reported down to this (dlib's adjust_threshold)


@dataclass(frozen=True)
class Calibration:
    """A logistic calibration: ``p = 1 / (1 + exp(-(w · x + b)))`` of the features
    ``x = (log10(recheck + 0.01), appearance, miss)`` (:data:`FEATURES`), each first clipped to
    the range where the calibration saw enough rows (:attr:`low`, :attr:`high`; 99 % of good
    faces' HOG scores lie below 1.14), so that no input is extrapolated beyond it: a HOG score
    of 3 on a very clean face buys no more trust than 1.5. Monotone by construction: ``p``
    falls with the recheck's distance and the window's miss (weights ≤ 0) and rises with the
    HOG score (weight ≥ 0)."""

    weights: tuple[float, float, float]
    bias: float
    low: tuple[float, float, float] = (-2.0, _HOG_FLOOR, 0.0)
    high: tuple[float, float, float] = (1.0, 1.5, 1.0)

    #: The sign each weight must have.
    SIGNS = (-1.0, 1.0, -1.0)

    def __post_init__(self) -> None:
        w = self.weights
        if len(w) != len(FEATURES) or any(v * sign < 0 for v, sign in zip(w, self.SIGNS, strict=True)):
            raise ValueError(
                f"a confidence calibration must fall with the recheck error and the window's miss "
                f"and rise with the HOG score, got weights {w}"
            )

    def inputs(self, features: np.ndarray) -> np.ndarray:
        """``(N, 3)`` the logistic's inputs of ``(N, 3)`` raw :data:`FEATURES` (NaN stays NaN)."""
        x = np.array(features, np.float64).reshape(-1, len(FEATURES))
        x[:, 0] = np.log10(np.maximum(x[:, 0], 0.0) + 0.01)
        return np.clip(x, self.low, self.high)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """``(N,)`` confidences in [0, 1] of ``(N, 3)`` features (0 where a feature is NaN)."""
        x = self.inputs(features)
        z = x @ np.asarray(self.weights) + self.bias
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
        return np.where(np.isfinite(z), p, 0.0)


#: The shipped calibration (fitted by ``benchmarks/calibrate_confidence.py``; see the module
#: docstring).
CALIBRATION = Calibration(weights=(-7.1743, 1.4554, -3.6019), bias=-6.4197)


def check_box(landmarks: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``(4,)`` the detector-style box (:data:`CHECK_BOX`) of ``(68, 2)`` landmarks, scaled
    about its centre."""
    centre, size = landmark_extent(np.asarray(landmarks, np.float64))
    dx, dy, half = CHECK_BOX
    middle = centre + np.array([dx, dy]) * size
    return np.concatenate([middle - half * scale * size, middle + half * scale * size])


@functools.cache
def _hog_detector() -> tuple[dlib.fhog_object_detector, threading.Lock]:
    """dlib's HOG face detector, one per process (it takes a second to build), and the lock
    that keeps it to one thread at a time (a detector loads each image into itself)."""
    return dlib.get_frontal_face_detector(), threading.Lock()


def _registered(
    image: np.ndarray, matrix: np.ndarray, scale: float, region: tuple[float, ...], size: tuple[int, int]
) -> np.ndarray:
    """The part ``region`` (x0, y0, ...) of the 256 registered crop, scaled by ``scale``."""
    x0, y0 = region[0], region[1]
    to_part = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]]) @ np.vstack([matrix, [0, 0, 1]])
    return cv2.warpAffine(image, to_part, size, flags=cv2.INTER_LINEAR)


def _hog_window(image: np.ndarray, matrix: np.ndarray) -> tuple[float, float, float, float]:
    """The HOG check of the registered face: the best window's score (floor -3) and its centre
    x, y and width in the 256 crop's coordinates (NaN when no window scores above the floor)."""
    x0, y0, x1, y1 = _HOG_REGION
    part = _registered(
        image, matrix, _HOG_SCALE, _HOG_REGION, (int((x1 - x0) * _HOG_SCALE), int((y1 - y0) * _HOG_SCALE))
    )
    detector, lock = _hog_detector()
    with lock:
        boxes, scores, _ = detector.run(part, 0, _HOG_FLOOR)
    if not len(scores):
        return _HOG_FLOOR, np.nan, np.nan, np.nan
    best = int(np.argmax(scores))
    box = boxes[best]
    left, top = box.left() / _HOG_SCALE + x0, box.top() / _HOG_SCALE + y0
    right, bottom = box.right() / _HOG_SCALE + x0, box.bottom() / _HOG_SCALE + y0
    return float(scores[best]), (left + right) / 2, (top + bottom) / 2, right - left


def features_of(measures: np.ndarray, face_box: tuple[float, float, float] = FACE_BOX) -> np.ndarray:
    """``(N, 3)`` :data:`FEATURES` of ``(N, 5)`` :meth:`LandmarkConfidence.measure` rows: the
    window's miss is 1 − its IoU with the square ``face_box`` (centre x, y, side); 1 where no
    window was found."""
    m = np.asarray(measures, np.float64).reshape(-1, 5)
    half = m[:, 4:5] / 2
    window = np.concatenate([m[:, 2:4] - half, m[:, 2:4] + half], axis=1)
    cx, cy, side = face_box
    expected = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    low, high = np.maximum(window[:, :2], expected[:2]), np.minimum(window[:, 2:], expected[2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    iou = inter / (m[:, 4] ** 2 + side**2 - inter)
    miss = np.where(np.isfinite(m[:, 4]), 1.0 - iou, 1.0)
    return np.stack([m[:, 0], m[:, 1], np.where(np.isnan(m[:, 0]), np.nan, miss)], axis=1)


class LandmarkConfidence:
    """OpenFace-style ``confidence`` of faces' landmarks (see the module docstring).

    Args:
        predictor: the landmark predictor that placed the landmarks (it is run again).
        calibration: features → confidence.
    """

    def __init__(self, predictor: LandmarkPredictor, calibration: Calibration = CALIBRATION) -> None:
        self.predictor = predictor
        self.calibration = calibration

    def measure(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``(5,)`` what the checks measure for one face's ``(68, 2)`` landmarks in an
        ``(H, W, 3)`` uint8 RGB image: the recheck's mean distance (IOD), the HOG window's
        score, centre x, y and width (crop coordinates; :func:`features_of` makes them
        :data:`FEATURES`); all NaN where the landmarks cannot be checked (not finite,
        collinear eyes and chin)."""
        landmarks = np.asarray(landmarks, np.float64)
        iod = interocular_distance(landmarks) if np.isfinite(landmarks).all() else 0.0
        try:
            matrix = align.registration_matrix(landmarks)
        except ValueError:
            return np.full(5, np.nan)
        if iod < 1.0:
            return np.full(5, np.nan)
        again = self.predictor.predict(image, check_box(landmarks, CHECK_SCALE))
        recheck = float(np.linalg.norm(again - landmarks, axis=1).mean() / iod)
        return np.array([recheck, *_hog_window(image, matrix)])

    def features(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``(3,)`` :data:`FEATURES` of one face (see :meth:`measure`)."""
        return features_of(self.measure(image, landmarks))[0]

    def __call__(self, image: np.ndarray, faces: Sequence[np.ndarray]) -> np.ndarray:
        """``(F,)`` confidences in [0, 1] of the ``(68, 2)`` landmarks of F faces of ``image``."""
        if len(faces) == 0:
            return np.zeros(0)
        return self.calibration(np.stack([self.features(image, lm) for lm in faces]))
