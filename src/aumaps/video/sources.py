"""Where frames come from: video files, webcams and folders of frames, decoded ahead in a thread.

A :class:`FrameSource` yields :class:`Frame` objects (index, timestamp, RGB image, or the
reason a frame has none); :class:`FrameReader` decodes a source in a background thread into a
bounded queue; :func:`open_source` picks the source for a path or a camera index.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..images import ImageReadError, list_images, read_image
from ..timing import StageTimes

__all__ = [
    "VIDEO_EXTENSIONS",
    "Frame",
    "FrameReader",
    "FrameSource",
    "ImageSequenceSource",
    "VideoFileSource",
    "VideoOpenError",
    "WebcamSource",
    "is_video_file",
    "open_source",
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


def open_source(source: str | os.PathLike[str] | int, fps: float = 30.0) -> FrameSource:
    """The frame source for a webcam index (an ``int``, or a string of digits that is not an
    existing path), a folder of frames, or a video file.

    Raises:
        FileNotFoundError: no such file or folder, or a folder without images.
        VideoOpenError: the file or camera cannot be opened.
    """
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit() and not os.path.exists(source)):
        return WebcamSource(int(source))
    path = Path(source)
    return ImageSequenceSource(path, fps) if path.is_dir() else VideoFileSource(path)
