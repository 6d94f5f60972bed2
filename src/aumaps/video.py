"""Videos, webcams and image sequences: AU intensities for every frame, at speed.

The pipeline, per source::

    frames (decoded in a background thread, bounded queue)
      -> faces: detected, then tracked from frame to frame (FaceTracker)
      -> registered crops, batched across frames through the network (VideoAnalyser)
      -> optional temporal smoothing of the intensities (IntensitySmoother)
      -> CSV rows (flushed frame by frame), overlay video, plot, HTML report

**Tracking.** Faces are found with the estimator's detector on the first frame, every
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

**Output rows** (:func:`video_csv_columns`) follow OpenFace's naming: ``frame`` (1-based,
as OpenFace), ``timestamp`` (seconds: frame position / fps for files and sequences, wall
clock for webcams), ``face_id``, ``success``, ``confidence`` (the detector's score at the
face's latest detection), ``box_x0..box_y1``, ``x_0..x_67``, ``y_0..y_67`` and one
``AUxx_r`` per AU. Every frame has at least one row: a frame without a face, or one that
could not be decoded, has a row with ``success = 0``, ``face_id = -1`` and empty cells.

**Smoothing** (off by default; :class:`IntensitySmoother`) replaces each face's
intensities with an exponential moving average (``ema:ALPHA``, causal) or a centred moving
average over ``K`` frames (``window:K``, looks ``K // 2`` frames ahead) of the same track.
Heatmaps and landmarks are never smoothed.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import queue
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import cv2
import numpy as np

from . import align
from .aus import column_name
from .images import ImageReadError, list_images, read_image
from .landmarks import DlibFaceDetector, FaceLandmarker, box_iou, landmark_extent
from .predict import AUEstimator, FaceResult

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "VIDEO_EXTENSIONS",
    "Frame",
    "FrameResult",
    "FrameReader",
    "FrameSource",
    "FaceTracker",
    "ImageSequenceSource",
    "IntensitySmoother",
    "OverlayWriter",
    "StageTimes",
    "TrackedFace",
    "VideoAnalyser",
    "VideoCSVWriter",
    "VideoFileSource",
    "VideoOpenError",
    "VideoSummary",
    "WebcamSource",
    "frame_rows",
    "is_video_file",
    "process_video",
    "video_csv_columns",
]

log = logging.getLogger(__name__)

#: File name suffixes (lower case) that ``aumaps predict`` treats as videos.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
     ".ogv", ".3gp", ".ts", ".mts", ".m2ts"}
)  # fmt: skip


class VideoOpenError(ValueError):
    """A video or camera could not be opened (or an overlay video not created)."""


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a video suffix (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


# -- timing ------------------------------------------------------------------------------------
class StageTimes:
    """Seconds spent in each stage of the pipeline (decode, detect, landmarks, ...).

    ``with times("detect"): ...`` adds the block's wall time to ``times.seconds["detect"]``.
    Each stage is timed by one thread (decoding runs in its own thread, overlapping the rest).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


# -- frame sources -----------------------------------------------------------------------------
@dataclass
class Frame:
    """One frame of a source.

    Attributes:
        index: 0-based position in the source.
        timestamp: seconds from the start.
        image: ``(H, W, 3)`` uint8 RGB; ``None`` when the frame could not be decoded.
        error: why ``image`` is ``None``.
    """

    index: int
    timestamp: float
    image: np.ndarray | None = field(repr=False)
    error: str | None = None


class FrameSource(ABC):
    """Frames of a video, a camera or an image sequence.

    Attributes:
        name: how messages refer to the source.
        fps: frames per second (timestamps are ``index / fps`` unless the source is live).
        frame_count: frames announced by the source (``None`` when unknown, e.g. a camera).
        live: whether frames come in real time (a camera): it ends on Ctrl-C.
        problems: messages about damaged or missing frames, filled while reading.
    """

    name: str
    fps: float
    frame_count: int | None
    live: bool = False

    def __init__(self) -> None:
        self.problems: list[str] = []

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """The frames in order, each index once; called once, from the decoding thread."""

    def close(self) -> None:
        """Release the underlying file or device."""

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("%s", message)


def _fps(capture: cv2.VideoCapture, default: float) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if np.isfinite(fps) and 0 < fps < 1000 else default


class VideoFileSource(FrameSource):
    """A video file, decoded by OpenCV (FFmpeg).

    A file that decodes fewer frames than its container announces (truncated, damaged) is
    reported, and the missing frames are yielded without an image so every announced frame
    gets a row.

    Raises:
        FileNotFoundError: no such file.
        VideoOpenError: OpenCV cannot open it as a video.
    """

    def __init__(self, path: str | os.PathLike[str], default_fps: float = 30.0) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such video file: '{self.path}'")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise VideoOpenError(
                f"cannot open video '{self.path}': it is not a video OpenCV can decode "
                "(damaged, truncated — an MP4 cut short loses its index — or an unsupported codec)"
            )
        self.fps = _fps(self._capture, default_fps)
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if np.isfinite(count) and count > 0 else None

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                break
            yield Frame(index, index / self.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
        if self.frame_count is not None and index < self.frame_count:
            self._problem(
                f"{self.name}: decoding stopped after {index} of the {self.frame_count} frames the "
                f"file announces (truncated or damaged file); frames {index + 1}-{self.frame_count} "
                "are written with success 0"
            )
            for missing in range(index, self.frame_count):
                yield Frame(missing, missing / self.fps, None, "frame could not be decoded")
        elif index == 0:
            self._problem(f"{self.name}: no frame could be decoded")

    def close(self) -> None:
        self._capture.release()


class WebcamSource(FrameSource):
    """A camera by OpenCV index (``--webcam 0``); timestamps are wall-clock seconds.

    Raises:
        VideoOpenError: the camera cannot be opened.
    """

    live = True

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        self.name = f"webcam {index}"
        self._capture = cv2.VideoCapture(int(index))
        if not self._capture.isOpened():
            raise VideoOpenError(f"cannot open webcam {index}: no such camera, or it is in use")
        self.fps = _fps(self._capture, 30.0)
        self.frame_count = None

    def frames(self) -> Iterator[Frame]:
        start = time.perf_counter()
        index = 0
        while True:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                self._problem(f"{self.name}: the camera stopped delivering frames")
                return
            yield Frame(index, time.perf_counter() - start, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1

    def close(self) -> None:
        self._capture.release()


class ImageSequenceSource(FrameSource):
    """A folder of frames (image files in natural order: ``f2.png`` before ``f10.png``).

    An unreadable file becomes a frame without an image (a ``success = 0`` row).

    Raises:
        FileNotFoundError: the folder does not exist or holds no image.
    """

    def __init__(self, folder: str | os.PathLike[str], fps: float = 30.0) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.name = str(self.folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"no such folder of frames: '{self.folder}'")
        self.files = list_images(self.folder)
        if not self.files:
            raise FileNotFoundError(f"'{self.folder}' holds no image files to read as frames")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.frame_count = len(self.files)

    def frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            try:
                yield Frame(index, index / self.fps, read_image(path))
            except ImageReadError as err:
                self._problem(f"{self.name}: frame {index + 1}: {err}")
                yield Frame(index, index / self.fps, None, str(err))


class FrameReader:
    """Decodes a source's frames in a background thread into a bounded queue.

    Use as a context manager and iterate. :meth:`stop` ends decoding early: the frames
    already decoded are still yielded, then the iteration ends. Leaving the block stops the
    thread and releases the source. An exception in the thread is raised by the iteration.

    Args:
        source: the frames.
        queue_size: frames decoded ahead at most.
        times: where decoding time is added (stage ``"decode"``).
    """

    _END = object()

    def __init__(self, source: FrameSource, queue_size: int = 16, times: StageTimes | None = None) -> None:
        self.source = source
        self.times = times or StageTimes()
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self._stop = threading.Event()  # decode no more
        self._closed = threading.Event()  # nobody reads any more
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="aumaps-decode", daemon=True)

    def __enter__(self) -> FrameReader:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _put(self, item: object) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        frames = self.source.frames()
        try:
            while not self._stop.is_set():
                with self.times("decode"):
                    frame = next(frames, None)
                if frame is None or not self._put(frame):
                    break
        except Exception as err:  # handed to the consuming thread
            self._error = err
        finally:
            self._put(self._END)

    def __iter__(self) -> Iterator[Frame]:
        while not self._closed.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def stop(self) -> None:
        """Decode no more frames (safe from a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        """Stop decoding, wait for the thread and release the source."""
        self._stop.set()
        self._closed.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self.source.close()


# -- tracking ----------------------------------------------------------------------------------
@dataclass
class TrackedFace:
    """A face in one frame, as the tracker gives it.

    Attributes:
        face_id: the track's id, stable while the face is tracked.
        box: ``(4,)`` x0, y0, x1, y1 the landmarks were placed in (the detector's box on a
            detection, else the box derived from the previous frame's landmarks).
        score: the detector's score at the track's latest detection.
        landmarks: ``(68, 2)`` image x, y.
        detected: whether the face was detected on this frame (else tracked).
    """

    face_id: int
    box: np.ndarray
    score: float
    landmarks: np.ndarray
    detected: bool


@dataclass
class _Track:
    face_id: int
    landmarks: np.ndarray
    box: np.ndarray
    score: float
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
        grey = patch.astype(np.float32).mean(axis=2).ravel()
        grey -= grey.mean()
        norm = float(np.linalg.norm(grey))
        return grey / norm if norm > 1e-3 * grey.size else None

    def _box_from(self, track: _Track, landmarks: np.ndarray) -> np.ndarray:
        """The detector-style box of a face with these landmarks, as calibrated for ``track``."""
        centre, size = landmark_extent(landmarks)
        offset, half = track.box_model[:2], track.box_model[2:]
        middle = centre + offset * size
        return np.concatenate([middle - half * size, middle + half * size])

    def _new_track(self, image: np.ndarray, box: np.ndarray, score: float, landmarks: np.ndarray,
                   face_id: int | None = None) -> _Track | None:
        template = self._patch(image, landmarks)
        if template is None:
            return None
        centre, size = landmark_extent(landmarks)
        size = max(size, 1.0)
        box = np.asarray(box, float)
        model = np.concatenate([((box[:2] + box[2:]) / 2 - centre) / size, (box[2:] - box[:2]) / 2 / size])
        if face_id is None:
            face_id, self._next_id = self._next_id, self._next_id + 1
        return _Track(face_id, landmarks, box, float(score), model, template)

    def _follow(self, image: np.ndarray, track: _Track) -> tuple[np.ndarray, np.ndarray] | None:
        """Landmarks and box of ``track`` in ``image``, or None if tracking fails."""
        landmarks = self._predict(image, track.box)
        with self.times("track"):
            (old_c, old_s), (new_c, new_s) = landmark_extent(track.landmarks), landmark_extent(landmarks)
            h, w = image.shape[:2]
            inside = np.mean((landmarks[:, 0] >= 0) & (landmarks[:, 0] < w) & (landmarks[:, 1] >= 0)
                             & (landmarks[:, 1] < h))
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
        detect = (
            not self._tracks
            or any(f is None for f in followed)
            or self._since_detection >= self.redetect_every
        )
        if not detect:
            out = []
            for track, (landmarks, box) in zip(self._tracks, followed, strict=True):
                track.landmarks, track.box = landmarks, box
                out.append(TrackedFace(track.face_id, box, track.score, landmarks, False))
            return out
        return self._detect(image, followed)

    def _detect(self, image: np.ndarray, followed: list) -> list[TrackedFace]:
        detector = self.landmarker.detector
        with self.times("detect"):
            if self._tracks and isinstance(detector, DlibFaceDetector):  # periodic: no small-face search
                detections = detector.detect(image, small_faces=False)
            else:
                detections = detector.detect(image)
            detections = detections[: self.landmarker.max_faces]
        self.detections += 1
        self._since_detection = 0
        found = [(np.asarray(box, float), score, self._predict(image, box)) for box, score in detections]
        expected = [f[1] if f is not None else t.box for t, f in zip(self._tracks, followed, strict=True)]
        pairs = _match(box_iou(np.array(expected).reshape(-1, 4), np.array([d[0] for d in found]).reshape(-1, 4)),
                       self.min_iou) if found and expected else []
        tracks: list[_Track] = []
        detected: set[int] = set()
        matched = {t: d for t, d in pairs}
        for t, (track, follow) in enumerate(zip(self._tracks, followed, strict=True)):
            if t in matched:
                box, score, landmarks = found[matched[t]]
                renewed = self._new_track(image, box, score, landmarks, face_id=track.face_id)
                if renewed is not None:
                    tracks.append(renewed)
                    detected.add(renewed.face_id)
                    continue
            if follow is not None:  # missed by the detector, still tracked
                track.landmarks, track.box = follow
                tracks.append(track)
        used = set(matched.values())
        for d, (box, score, landmarks) in enumerate(found):
            if d in used:
                continue
            if tracks and box_iou(box, np.array([t.box for t in tracks])).max() >= self.min_iou:
                continue  # the same face as a track the detector did not match
            new = self._new_track(image, box, score, landmarks)
            if new is not None:
                tracks.append(new)
                detected.add(new.face_id)
        limit = self.landmarker.max_faces
        self._tracks = sorted(tracks, key=lambda t: t.face_id)[:limit]
        return [
            TrackedFace(t.face_id, t.box, t.score, t.landmarks, t.face_id in detected)
            for t in self._tracks
        ]


# -- AU estimation over frames ----------------------------------------------------------------
@dataclass
class FrameResult:
    """AU estimates of one frame.

    Attributes:
        index: 0-based frame position (the CSV's ``frame`` is ``index + 1``).
        timestamp: seconds.
        faces: one :class:`~aumaps.predict.FaceResult` per face, ``face`` being the track's
            ``face_id``; empty when there is no face.
        image: the frame, ``(H, W, 3)`` uint8 RGB (``None`` if it could not be decoded).
        error: why the frame has no image.
    """

    index: int
    timestamp: float
    faces: list[FaceResult]
    image: np.ndarray | None = field(repr=False)
    error: str | None = None


class IntensitySmoother:
    """Temporal smoothing of each track's intensities (heatmaps are left as they are).

    Args:
        method: ``"ema"``: exponential moving average ``s_t = alpha * x_t + (1 - alpha) *
            s_{t-1}`` per track, restarted when a track starts (causal, no delay);
            ``"window"``: centred moving average over the track's frames among the ``size``
            frames around each frame (results are delayed by ``size // 2`` frames).
        alpha: the EMA weight of the newest frame, in (0, 1].
        size: the window length in frames, odd, at least 1.
    """

    def __init__(self, method: str = "ema", alpha: float = 0.5, size: int = 5) -> None:
        if method not in ("ema", "window"):
            raise ValueError(f"smoothing method must be 'ema' or 'window', got {method!r}")
        if not 0 < alpha <= 1:
            raise ValueError(f"the EMA alpha must lie in (0, 1], got {alpha}")
        if size < 1 or size % 2 == 0:
            raise ValueError(f"the smoothing window must be an odd number of frames, got {size}")
        self.method, self.alpha, self.size = method, float(alpha), int(size)
        self._state: dict[int, np.ndarray] = {}
        self._window: deque[FrameResult] = deque()

    @classmethod
    def parse(cls, spec: str) -> IntensitySmoother:
        """From ``"ema"``, ``"ema:ALPHA"``, ``"window"`` or ``"window:K"`` (the CLI's ``--smooth``)."""
        method, _, value = spec.partition(":")
        try:
            if method == "ema":
                return cls("ema", alpha=float(value) if value else 0.5)
            if method == "window":
                return cls("window", size=int(value) if value else 5)
        except ValueError as err:
            raise ValueError(f"bad smoothing {spec!r}: {err}") from err
        raise ValueError(f"bad smoothing {spec!r}: use ema, ema:ALPHA, window or window:K")

    def describe(self) -> str:
        """In words, e.g. ``"ema, alpha 0.5"``."""
        return f"ema, alpha {self.alpha:g}" if self.method == "ema" else f"centred window of {self.size} frames"

    def push(self, result: FrameResult) -> list[FrameResult]:
        """Smoothed results now final, in frame order."""
        if self.method == "ema":
            alive = {}
            faces = []
            for face in result.faces:
                previous = self._state.get(face.face)
                value = face.intensities if previous is None else (
                    self.alpha * face.intensities + (1 - self.alpha) * previous)
                alive[face.face] = value
                faces.append(replace(face, intensities=value))
            self._state = alive
            return [replace(result, faces=faces)]
        self._window.append(result)
        half = self.size // 2
        if len(self._window) <= half:
            return []
        ready = self._centred(len(self._window) - 1 - half)
        if len(self._window) == self.size:
            self._window.popleft()
        return [ready]

    def flush(self) -> list[FrameResult]:
        """The results still held back (window smoothing), at the end of the stream."""
        if self.method == "ema":
            return []
        half = self.size // 2
        start = max(len(self._window) - half, 0) if len(self._window) > half else 0
        out = [self._centred(i) for i in range(start, len(self._window))]
        self._window.clear()
        return out

    def _centred(self, i: int) -> FrameResult:
        """Frame ``i`` of the window with each face's intensities averaged over its
        appearances within ``size // 2`` positions."""
        half = self.size // 2
        near = list(self._window)[max(i - half, 0): i + half + 1]
        result = self._window[i]
        faces = []
        for face in result.faces:
            values = [f.intensities for r in near for f in r.faces if f.face == face.face]
            faces.append(replace(face, intensities=np.mean(values, axis=0)))
        return replace(result, faces=faces)


class VideoAnalyser:
    """Frames in, :class:`FrameResult` out: tracking, registration, batched network.

    Crops of consecutive frames are gathered until ``estimator.batch_size`` crops (or as
    many frames) are waiting, then run through the network together. :meth:`push` returns
    the results that became final, in frame order; :meth:`flush` the rest (at the end, or
    after Ctrl-C: frames already tracked are still analysed).

    Args:
        estimator: network, codec and landmarker (its ``backend`` decides fp32 or fast).
        tracker: a :class:`FaceTracker` over ``estimator.landmarker`` by default.
        smoother: optional :class:`IntensitySmoother`.
        times: where registration and network times are added.
    """

    def __init__(
        self,
        estimator: AUEstimator,
        tracker: FaceTracker | None = None,
        smoother: IntensitySmoother | None = None,
        times: StageTimes | None = None,
    ) -> None:
        self.estimator = estimator
        self.times = times or (tracker.times if tracker else StageTimes())
        self.tracker = tracker or FaceTracker(estimator.landmarker, times=self.times)
        self.smoother = smoother
        self._pending: list[tuple[Frame, list[TrackedFace], np.ndarray, np.ndarray]] = []

    def push(self, frame: Frame) -> list[FrameResult]:
        """Track and register ``frame``; results that became final."""
        faces = [] if frame.image is None else self.tracker.update(frame.image)
        with self.times("register"):
            faces, mats, crops = self._register(frame.image, faces)
        self._pending.append((frame, faces, mats, crops))
        waiting = sum(len(p[1]) for p in self._pending)
        if waiting >= self.estimator.batch_size or len(self._pending) >= self.estimator.batch_size:
            return self._run()
        return []

    def flush(self) -> list[FrameResult]:
        """Analyse the frames still waiting and release the smoother's."""
        results = self._run() if self._pending else []
        if self.smoother is None:
            return results
        return results + self.smoother.flush()

    def _register(
        self, image: np.ndarray | None, faces: list[TrackedFace]
    ) -> tuple[list[TrackedFace], np.ndarray, np.ndarray]:
        size = self.estimator.codec.crop_size
        kept, mats, crops = [], [], []
        for face in faces:
            try:
                matrix = align.registration_matrix(face.landmarks)
            except ValueError:
                log.debug("frame face %d: degenerate landmarks, skipped", face.face_id)
                continue
            kept.append(face)
            mats.append(matrix)
            crops.append(align.warp_to_crop(image, matrix, size))
        return (kept, np.array(mats).reshape(-1, 2, 3),
                np.array(crops, dtype=np.uint8).reshape(-1, size, size, 3))

    def _run(self) -> list[FrameResult]:
        pending = self._pending
        faces = iter(self._analyse(
            np.concatenate([p[3] for p in pending]),
            np.concatenate([p[2] for p in pending]),
            [face for p in pending for face in p[1]],
        ))
        results = [
            FrameResult(frame.index, frame.timestamp, [next(faces) for _ in tracked], frame.image, frame.error)
            for frame, tracked, _, _ in pending
        ]
        self._pending = []
        if self.smoother is None:
            return results
        return [final for r in results for final in self.smoother.push(r)]

    def _analyse(self, crops: np.ndarray, mats: np.ndarray, tracked: list[TrackedFace]) -> list[FaceResult]:
        """One :class:`FaceResult` per crop (``(N, S, S, 3)``, registered by ``(N, 2, 3)`` mats)."""
        if not len(crops):
            return []
        with self.times("network"):
            maps = self.estimator.heatmaps(crops)
        with self.times("readout"):
            decoded = self.estimator.codec.decode(maps)
            inv = align.invert(mats)
            peaks = align.transform_points(decoded.peaks.reshape(len(crops), -1, 2), inv).reshape(decoded.peaks.shape)
            argmax = align.transform_points(decoded.argmax, inv)
            return [
                FaceResult(face=face.face_id, aus=self.estimator.aus, intensities=decoded.intensities[k],
                           heatmaps=maps[k], peaks=peaks[k], argmax=argmax[k], landmarks=face.landmarks,
                           box=np.asarray(face.box, dtype=np.float64), score=face.score, matrix=mats[k],
                           crop=crops[k])
                for k, face in enumerate(tracked)
            ]

    def run(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        """All results of ``frames``, in order."""
        for frame in frames:
            yield from self.push(frame)
        yield from self.flush()


# -- outputs -----------------------------------------------------------------------------------
def video_csv_columns(aus: Sequence[int]) -> list[str]:
    """The per-frame CSV header (OpenFace names; see the module docstring)."""
    cols = ["frame", "timestamp", "face_id", "success", "confidence", "box_x0", "box_y0", "box_x1", "box_y1"]
    cols += [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    return cols + [column_name(a) for a in aus]


def _fmt(value: float, digits: int) -> float | str:
    value = float(value)
    return round(value, digits) if np.isfinite(value) else ""


def frame_rows(result: FrameResult, aus: Sequence[int]) -> list[dict]:
    """CSV rows of one frame: one per face, or one ``success = 0`` row."""
    base = {"frame": result.index + 1, "timestamp": round(result.timestamp, 3)}
    if not result.faces:
        return [{**base, "face_id": -1, "success": 0}]
    rows = []
    for face in result.faces:
        row = {**base, "face_id": face.face, "success": 1, "confidence": _fmt(face.score, 4)}
        row.update(zip(("box_x0", "box_y0", "box_x1", "box_y1"), (_fmt(v, 2) for v in face.box), strict=True))
        row.update({f"x_{i}": _fmt(v, 2) for i, v in enumerate(face.landmarks[:, 0])})
        row.update({f"y_{i}": _fmt(v, 2) for i, v in enumerate(face.landmarks[:, 1])})
        row.update({column_name(a): _fmt(v, 4) for a, v in zip(aus, face.intensities, strict=True)})
        rows.append(row)
    return rows


class VideoCSVWriter:
    """Writes :class:`FrameResult` rows to a CSV, flushed after every frame."""

    def __init__(self, path: str | os.PathLike[str], aus: Sequence[int]) -> None:
        self.path = Path(path)
        self.aus = tuple(aus)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=video_csv_columns(self.aus), restval="")
        self._writer.writeheader()

    def write(self, result: FrameResult) -> None:
        self._writer.writerows(frame_rows(result, self.aus))
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> VideoCSVWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class OverlayWriter:
    """The overlay video: each frame with its faces' AU maps drawn where they sit
    (:func:`aumaps.visualise.draw_faces`) and, to its right, live intensity bars per face.

    Every input frame gives one output frame (an undecodable frame a dark one), so the
    overlay has the input's frame count. The codec follows the suffix: MJPG for ``.avi``,
    MPEG-4 Part 2 (``mp4v``) otherwise.

    Raises:
        VideoOpenError: OpenCV cannot create the file.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, aus: Sequence[int]) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.aus = tuple(aus)
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None  # frame height, width
        self._panel_width = 0
        self._waiting = 0  # undecodable frames before the first image (size unknown yet)

    def _open(self, height: int, width: int) -> None:
        from .visualise import draw_legend

        self._size = (height, width)
        self._panel_width = draw_legend(self.aus, None, height).shape[1]
        fourcc = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps, (width + self._panel_width, height)
        )
        if not self._writer.isOpened():
            raise VideoOpenError(f"cannot write the overlay video '{self.path}' (codec {fourcc})")

    def _panel(self, faces: Sequence[FaceResult], height: int) -> np.ndarray:
        """The intensity bars of each face (a grid of legends when there are several)."""
        from .visualise import draw_legend

        width = self._panel_width
        panel = np.full((height, width, 3), 32, np.uint8)
        legends = [draw_legend(f.aus, f.intensities, height, title=f"face {f.face}") for f in faces]
        legends = legends or [draw_legend(self.aus, None, height, title="no face")]
        cols = math.ceil(math.sqrt(len(legends)))
        cell_w, cell_h = width // cols, height // math.ceil(len(legends) / cols)
        for i, legend in enumerate(legends):
            scale = min(cell_w / legend.shape[1], cell_h / legend.shape[0], 1.0)
            size = (max(int(legend.shape[1] * scale), 1), max(int(legend.shape[0] * scale), 1))
            small = cv2.resize(legend, size, interpolation=cv2.INTER_AREA) if scale < 1 else legend
            row, col = divmod(i, cols)
            panel[row * cell_h : row * cell_h + size[1], col * cell_w : col * cell_w + size[0]] = small
        return panel

    def write(self, result: FrameResult) -> None:
        """Add the frame of ``result``."""
        from .visualise import draw_faces

        if result.image is None:
            if self._size is None:
                self._waiting += 1
                return
            self._put(np.full((*self._size, 3), 16, np.uint8), [], "frame could not be decoded")
            return
        if self._size is None:
            self._open(*result.image.shape[:2])
        image, faces = result.image, result.faces
        if image.shape[:2] != self._size:  # image sequences may change size
            scale = (self._size[1] / image.shape[1], self._size[0] / image.shape[0])
            image = cv2.resize(image, self._size[::-1], interpolation=cv2.INTER_AREA)
            faces = [_rescaled(f, scale) for f in faces]
        while self._waiting:
            self._waiting -= 1
            self._put(np.full((*self._size, 3), 16, np.uint8), [], "frame could not be decoded")
        self._put(draw_faces(image, faces), faces, None)

    def _put(self, canvas: np.ndarray, faces: Sequence[FaceResult], note: str | None) -> None:
        if note:
            cv2.putText(canvas, note, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (230, 230, 230), 2, cv2.LINE_AA)
        frame = np.concatenate([canvas, self._panel(faces, canvas.shape[0])], axis=1)
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finish the file (frames still waiting for a size are dropped with a warning)."""
        if self._waiting:
            log.warning("%s: no frame could be decoded, no overlay written", self.path)
        if self._writer is not None:
            self._writer.release()


def _rescaled(face: FaceResult, scale: tuple[float, float]) -> FaceResult:
    """``face`` for its image resized by ``scale`` (sx, sy)."""
    s = np.array(scale)
    to_old = np.diag([1 / s[0], 1 / s[1], 1.0])
    matrix = np.vstack([face.matrix, [0, 0, 1]]) @ to_old
    return replace(face, matrix=matrix[:2], box=face.box * np.tile(s, 2), peaks=face.peaks * s,
                   argmax=face.argmax * s, landmarks=face.landmarks * s)


# -- one source, end to end --------------------------------------------------------------------
@contextmanager
def _on_interrupt(stop: Callable[[], None]) -> Iterator[threading.Event]:
    """Within the block, a first Ctrl-C calls ``stop`` and sets the returned event instead of
    raising KeyboardInterrupt; a second one raises as usual. Off the main thread (where
    signal handlers cannot be installed) the event is never set."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum: int, frame: object) -> None:
        interrupted.set()
        stop()
        signal.signal(signal.SIGINT, previous)

    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # installed outside Python
        previous = signal.default_int_handler
    signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class VideoSummary:
    """What :func:`process_video` did.

    Attributes:
        source: the source's name.
        frames: frames written to the CSV.
        frames_with_face: frames with at least one face.
        face_ids: distinct track ids seen.
        unreadable: frames that could not be decoded.
        detections: frames on which the detector ran.
        seconds: wall time of the loop.
        interrupted: stopped by Ctrl-C (everything done so far is written).
        problems: messages about the source (damaged or missing frames).
        outputs: what was written, by kind (``csv``, ``overlay``, ``plot``, ``report``).
        times: seconds per stage.
    """

    source: str
    frames: int = 0
    frames_with_face: int = 0
    face_ids: int = 0
    unreadable: int = 0
    detections: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Frames per second over the whole loop."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def process_video(
    estimator: AUEstimator,
    source: FrameSource,
    csv_path: str | os.PathLike[str],
    overlay: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
    smoother: IntensitySmoother | None = None,
    redetect_every: int = 30,
    progress: bool = True,
) -> VideoSummary:
    """Analyse every frame of ``source`` and write the outputs asked for.

    Args:
        estimator: the model (its ``backend`` and ``batch_size`` apply).
        source: a :class:`FrameSource` (it is closed at the end).
        csv_path: the per-frame CSV (written and flushed frame by frame).
        overlay: optional overlay video (see :class:`OverlayWriter`).
        plot: optional PNG of the intensity time series.
        report: optional folder for the HTML report (``index.html``).
        smoother: optional temporal smoothing of the intensities.
        redetect_every: run the face detector at least every this many frames.
        progress: show a progress bar with the frame rate.

    Ctrl-C (SIGINT, when called from the main thread) stops decoding: frames already decoded
    are analysed and written, the overlay, plot and report cover them, and the summary says
    ``interrupted``. A second Ctrl-C aborts at once (the CSV keeps the rows
    written so far).
    """
    from tqdm.auto import tqdm

    from . import report as reporting

    times = StageTimes()
    tracker = FaceTracker(estimator.landmarker, redetect_every=redetect_every, times=times)
    analyser = VideoAnalyser(estimator, tracker, smoother, times)
    summary = VideoSummary(source.name, problems=source.problems)
    peaks = reporting.PeakFrames(estimator.aus) if report else None
    overlay_writer = OverlayWriter(overlay, source.fps, estimator.aus) if overlay else None
    ids: set[int] = set()
    start = time.perf_counter()
    reader = FrameReader(source, times=times)
    with _on_interrupt(reader.stop) as interrupted, VideoCSVWriter(csv_path, estimator.aus) as writer, reader, tqdm(
        total=source.frame_count, desc=Path(source.name).name, unit="frame", disable=not progress, leave=False
    ) as bar:

        def emit(results: list[FrameResult]) -> None:
            for result in results:
                with times("write"):
                    writer.write(result)
                    if overlay_writer is not None:
                        overlay_writer.write(result)
                    if peaks is not None:
                        peaks.update(result)
                summary.frames += 1
                summary.frames_with_face += bool(result.faces)
                summary.unreadable += result.image is None
                ids.update(f.face for f in result.faces)
                bar.update(1)

        try:
            for frame in reader:
                emit(analyser.push(frame))
            emit(analyser.flush())
        finally:
            if overlay_writer is not None:
                overlay_writer.close()
        summary.interrupted = interrupted.is_set()
    summary.seconds = time.perf_counter() - start
    summary.face_ids = len(ids)
    summary.detections = tracker.detections
    summary.times = dict(times.seconds)
    summary.outputs["csv"] = Path(csv_path)
    if overlay_writer is not None and overlay_writer.frames:
        summary.outputs["overlay"] = overlay_writer.path
    if plot or report:
        table = reporting.load_series(csv_path, estimator.aus)
        if plot:
            summary.outputs["plot"] = reporting.plot_series(table, estimator.aus, plot, title=source.name)
        if report:
            card = estimator.checkpoint.card or {}
            facts = {
                "model": str(card.get("name", estimator.checkpoint.path)),
                "network back-end": estimator.backend,
                "smoothing": "none" if smoother is None else smoother.describe(),
                "speed": f"{summary.fps:.1f} frames/s",
            }
            if summary.interrupted:
                facts["stopped"] = "interrupted (Ctrl-C): the frames analysed until then"
            summary.outputs["report"] = reporting.write_report(
                report, table, estimator.aus, peaks=peaks, title=source.name, facts=facts
            )
    return summary
