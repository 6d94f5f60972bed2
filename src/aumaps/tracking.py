"""Faces followed from frame to frame: one tracker for videos, webcams and data-set preparation.

Faces are found with the estimator's detector on the first frame, every
``redetect_every`` frames, and whenever tracking fails. In between, the 68-point predictor
is re-run on a box derived from the face's landmarks in the previous frame: at each
detection the tracker records where the detector's box sits relative to the landmarks'
bounding box, and puts the next box in the same place, so that tracked landmarks stay
those the detector's box would give. Tracking of a face fails, and the frame is searched
by the detector again, when the new landmarks move or change scale implausibly between two
frames, leave the image, or when the registered face no longer looks like the face at its
last detection (normalised cross-correlation of a 32×32 grey patch of the registered
eyes-to-mouth region below ``min_similarity``: the face left, was covered, or the predictor
lost it). Each track keeps one ``face_id`` (0, 1, ... in order of appearance); detections
are matched to tracks by the overlap (IoU) of their boxes. A face the detector misses on a
scheduled detection keeps its id as long as tracking holds; a face that is lost and comes
back gets a new id.

Detectors that can search for small faces (``small_face_search = True``, e.g. dlib's upsampled
search) are asked not to on periodic re-detections while faces are tracked: those run often,
and faces entering the picture are found at normal size first.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import align
from .geometry import box_iou, landmark_extent
from .images import grey_signature
from .landmarks import FaceLandmarker
from .readout import FaceInput
from .timing import StageTimes

__all__ = ["FaceTracker", "TrackedFace"]


@dataclass
class TrackedFace(FaceInput):
    """A face in one frame, as the tracker gives it: what the readout takes, and whether it
    was detected.

    Attributes:
        face_id: the track's id, stable while the face is tracked.
        box: ``(4,)`` x0, y0, x1, y1 the landmarks were placed in (the detector's box on a
            detection, else the box derived from the previous frame's landmarks).
        detector_score: the detector's raw score at the track's latest detection.
        landmarks: ``(68, 2)`` image x, y.
        detected: whether the face was detected on this frame (else tracked).
    """

    detected: bool


@dataclass
class _Track:
    face_id: int
    landmarks: np.ndarray
    box: np.ndarray
    confidence: float
    box_model: np.ndarray  # detector box in units of the landmarks' bounding box
    template: np.ndarray  # (32*32,) zero-mean unit-norm grey patch at the last detection


_PATCH = 32
#: The crop region (x0, y0, side) the appearance patch covers: eyes to mouth.
_PATCH_REGION = (64.0, 64.0, 128.0)


def _match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (row, column) by decreasing IoU, each at least ``threshold``."""
    pairs = []
    iou = iou.copy()
    while iou.size and iou.max() >= threshold:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        pairs.append((int(i), int(j)))
        iou[i, :] = -1.0
        iou[:, j] = -1.0
    return pairs


class FaceTracker:
    """Faces and landmarks frame after frame, detecting only when needed.

    See the module docstring for the method.

    Args:
        landmarker: the detector and landmark predictor (an estimator's ``landmarker``).
        redetect_every: run the detector at least every this many frames (1 = every frame).
        min_iou: smallest box overlap that matches a detection to a track.
        min_similarity: smallest appearance correlation (−1..1) with the face at its latest
            detection for tracking to hold.
        max_shift: largest move of the landmarks' centre between two frames, in face sizes.
        max_scale_change: largest relative change of the face's size between two frames.
        times: where detection, landmark and tracking-check times are added.
    """

    def __init__(
        self,
        landmarker: FaceLandmarker,
        redetect_every: int = 30,
        min_iou: float = 0.3,
        min_similarity: float = 0.5,
        max_shift: float = 0.35,
        max_scale_change: float = 0.25,
        times: StageTimes | None = None,
    ) -> None:
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be at least 1, got {redetect_every}")
        self.landmarker = landmarker
        self.redetect_every = int(redetect_every)
        self.min_iou = float(min_iou)
        self.min_similarity = float(min_similarity)
        self.max_shift = float(max_shift)
        self.max_scale_change = float(max_scale_change)
        self.times = times or StageTimes()
        self.detections = 0
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._since_detection = 0

    # -- pieces ------------------------------------------------------------------------
    def _predict(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        with self.times("landmarks"):
            return self.landmarker.predictor.predict(image, box)

    @staticmethod
    def _patch(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        """Zero-mean, unit-norm grey patch of the registered face; None if degenerate."""
        try:
            matrix = align.registration_matrix(landmarks)
        except ValueError:
            return None
        x0, y0, side = _PATCH_REGION
        scale = _PATCH / side
        to_patch = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]]) @ np.vstack([matrix, [0, 0, 1]])
        patch = cv2.warpAffine(image, to_patch, (_PATCH, _PATCH), flags=cv2.INTER_LINEAR)
        return grey_signature(patch, min_norm=1e-3 * _PATCH * _PATCH)

    def _box_from(self, track: _Track, landmarks: np.ndarray) -> np.ndarray:
        """The detector-style box of a face with these landmarks, as calibrated for ``track``."""
        centre, size = landmark_extent(landmarks)
        offset, half = track.box_model[:2], track.box_model[2:]
        middle = centre + offset * size
        return np.concatenate([middle - half * size, middle + half * size])

    def _new_track(
        self, image: np.ndarray, box: np.ndarray, confidence: float, landmarks: np.ndarray, face_id: int | None = None
    ) -> _Track | None:
        template = self._patch(image, landmarks)
        if template is None:
            return None
        centre, size = landmark_extent(landmarks)
        size = max(size, 1.0)
        box = np.asarray(box, float)
        model = np.concatenate([((box[:2] + box[2:]) / 2 - centre) / size, (box[2:] - box[:2]) / 2 / size])
        if face_id is None:
            face_id, self._next_id = self._next_id, self._next_id + 1
        return _Track(face_id, landmarks, box, float(confidence), model, template)

    def _follow(self, image: np.ndarray, track: _Track) -> tuple[np.ndarray, np.ndarray] | None:
        """Landmarks and box of ``track`` in ``image``, or None if tracking fails."""
        landmarks = self._predict(image, track.box)
        with self.times("track"):
            (old_c, old_s), (new_c, new_s) = landmark_extent(track.landmarks), landmark_extent(landmarks)
            h, w = image.shape[:2]
            inside = np.mean(
                (landmarks[:, 0] >= 0) & (landmarks[:, 0] < w) & (landmarks[:, 1] >= 0) & (landmarks[:, 1] < h)
            )
            if (
                inside < 0.9
                or np.linalg.norm(new_c - old_c) > self.max_shift * old_s
                or abs(np.log(max(new_s, 1e-6) / max(old_s, 1e-6))) > np.log1p(self.max_scale_change)
            ):
                return None
            patch = self._patch(image, landmarks)
            if patch is None or float(patch @ track.template) < self.min_similarity:
                return None
        return landmarks, self._box_from(track, landmarks)

    # -- one frame -----------------------------------------------------------------------
    def update(self, image: np.ndarray) -> list[TrackedFace]:
        """Faces in the next frame, ordered by ``face_id``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
        """
        followed = [self._follow(image, track) for track in self._tracks]
        self._since_detection += 1
        detect = not self._tracks or any(f is None for f in followed) or self._since_detection >= self.redetect_every
        if not detect:
            out = []
            for track, (landmarks, box) in zip(self._tracks, followed, strict=True):
                track.landmarks, track.box = landmarks, box
                out.append(TrackedFace(track.face_id, box, track.confidence, landmarks, False))
            return out
        return self._detect(image, followed)

    def _detect(self, image: np.ndarray, followed: list) -> list[TrackedFace]:
        detector = self.landmarker.detector
        with self.times("detect"):
            if self._tracks and getattr(detector, "small_face_search", False):  # periodic: no small-face search
                detections = detector.detect(image, small_faces=False)
            else:
                detections = detector.detect(image)
            detections = detections[: self.landmarker.max_faces]
        self.detections += 1
        self._since_detection = 0
        found = [(np.asarray(box, float), confidence, self._predict(image, box)) for box, confidence in detections]
        expected = [f[1] if f is not None else t.box for t, f in zip(self._tracks, followed, strict=True)]
        pairs = (
            _match(
                box_iou(np.array(expected).reshape(-1, 4), np.array([d[0] for d in found]).reshape(-1, 4)), self.min_iou
            )
            if found and expected
            else []
        )
        tracks: list[_Track] = []
        detected: set[int] = set()
        matched = {t: d for t, d in pairs}
        for t, (track, follow) in enumerate(zip(self._tracks, followed, strict=True)):
            if t in matched:
                box, confidence, landmarks = found[matched[t]]
                renewed = self._new_track(image, box, confidence, landmarks, face_id=track.face_id)
                if renewed is not None:
                    tracks.append(renewed)
                    detected.add(renewed.face_id)
                    continue
            if follow is not None:  # missed by the detector, still tracked
                track.landmarks, track.box = follow
                tracks.append(track)
        used = set(matched.values())
        for d, (box, confidence, landmarks) in enumerate(found):
            if d in used:
                continue
            if tracks and box_iou(box, np.array([t.box for t in tracks])).max() >= self.min_iou:
                continue  # the same face as a track the detector did not match
            new = self._new_track(image, box, confidence, landmarks)
            if new is not None:
                tracks.append(new)
                detected.add(new.face_id)
        limit = self.landmarker.max_faces
        self._tracks = sorted(tracks, key=lambda t: t.face_id)[:limit]
        return [TrackedFace(t.face_id, t.box, t.confidence, t.landmarks, t.face_id in detected) for t in self._tracks]
