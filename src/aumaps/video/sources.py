"""Where frames come from: video files, webcams and folders of frames, decoded ahead in a thread.

A :class:`FrameSource` yields :class:`Frame` objects (index, timestamp, RGB image, or the
reason a frame has none). Video files are decoded by FFmpeg through PyAV, timestamps being the
frames' presentation times (variable frame rates included); cameras are read through
OpenCV. :class:`FrameReader` decodes a source in a background thread into a bounded queue;
:func:`open_source` picks the source for a path or a camera index.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..images import MAX_PIXELS_ENV, ImageReadError, ImageTooLarge, check_pixels, list_images, pixel_cap, read_image
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
        timestamp: seconds from the start (a video file's: the frame's presentation time).
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
        fps: frames per second: the nominal rate (video files: the stream's average; frame
            folders: as given, and their timestamps are ``index / fps``).
        frame_count: frames the source announces, for progress only (a video's is the
            container's estimate; ``None`` when unknown, e.g. a camera).
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

    def close(self) -> None:  # noqa: B027 (optional: sources without a file keep this)
        """Release the underlying file or device."""

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("%s", message)


def _fps(capture: cv2.VideoCapture, default: float) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if np.isfinite(fps) and 0 < fps < 1000 else default


def _seconds(text: str | None) -> float | None:
    """``HH:MM:SS.fraction`` (Matroska's per-track ``DURATION`` tag) in seconds, or None."""
    match = re.fullmatch(r"\s*(\d+):(\d\d):(\d\d(?:\.\d*)?)\s*", text or "")
    return None if match is None else int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])


class VideoFileSource(FrameSource):
    """A video file, decoded by FFmpeg through PyAV.

    **Time.** Each frame's timestamp is its presentation time from the container (seconds
    from the start of the video stream; the first frame is at 0 in nearly every file), so
    variable-frame-rate recordings (phones, screen recorders, browsers) keep their true
    timing. ``fps`` is the stream's average rate: for the overlay video and the progress bar.

    **Frames.** One :class:`Frame` per decoded frame, never more: the frame count a
    container announces (``frame_count``) is an estimate for the progress bar only.

    **Damage.** A file counts as damaged only when decoding fails before its end: a packet
    that does not decode (the frames after it are still decoded), reading that stops with an
    error, or decoding that ends well before the end the file declares (its video stream's
    duration or frame count; else the container's duration, which may include a longer audio
    track, so more slack is given). Each is reported in :attr:`problems` with where it
    happened (frame and time); the frames that decoded are kept.

    Args:
        path: the video file.
        default_fps: the rate assumed where the file states none.
        max_pixels: refuse frames larger than this many pixels (width × height from the
            stream's header, checked before anything is decoded; :func:`aumaps.images.pixel_cap`
            when None).

    Raises:
        FileNotFoundError: no such file.
        VideoOpenError: FFmpeg cannot open it as a video, it has no video stream, or its
            frames are over the pixel cap.
    """

    #: Decoding that ends this much before the declared end is a truncated file: at least
    #: this many frame intervals, and at least :attr:`SHORT_SECONDS` (the stream's own
    #: duration) or :attr:`SHORT_SECONDS_CONTAINER` (only the container's is known).
    SHORT_FRAMES = 3
    SHORT_SECONDS = 0.5
    SHORT_SECONDS_CONTAINER = 1.0

    def __init__(self, path: str | os.PathLike[str], default_fps: float = 30.0, max_pixels: int | None = None) -> None:
        import av  # FFmpeg's bindings, imported when a video is opened (0.25 s)

        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such video file: '{self.path}'")
        self._av = av
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as err:
            raise VideoOpenError(
                f"cannot open video '{self.path}': it is not a video FFmpeg can decode "
                f"(damaged, truncated — an MP4 cut short loses its index — or an unsupported codec): {err}"
            ) from None
        try:
            if not self._container.streams.video:
                raise VideoOpenError(f"cannot open video '{self.path}': the file has no video stream")
            self._stream = stream = self._container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            try:
                check_pixels(width, height, self.path, max_pixels)
            except ImageTooLarge as err:
                raise VideoOpenError(
                    f"cannot open video '{self.path}': its frames are {width}x{height} pixels "
                    f"({err.pixels / 1e6:,.0f} megapixels), more than the {err.limit / 1e6:,.0f} megapixels aumaps "
                    f"decodes (a larger cap: --max-pixels N, or the environment variable {MAX_PIXELS_ENV})"
                ) from None
            self._max_pixels = pixel_cap() if max_pixels is None else int(max_pixels)
            stream.thread_type = "AUTO"  # frame and slice threads, as OpenCV's FFmpeg reader
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate and 0 < float(rate) < 1000 else float(default_fps)
            self._declared = self._declared_end()
            if stream.frames and stream.frames > 0:
                self.frame_count: int | None = int(stream.frames)
            elif self._declared is not None:
                self.frame_count = max(int(round(self._declared[0] * self.fps)), 1)
            else:
                self.frame_count = None
        except BaseException:
            self._container.close()
            raise

    def _declared_end(self) -> tuple[float, bool] | None:
        """(seconds from the stream's start to the end the file declares, whether the video
        stream itself declares it), or None when the file does not say."""
        stream, container = self._stream, self._container
        tb = float(stream.time_base) if stream.time_base else 0.0
        own = []
        if stream.duration and tb:
            own.append(stream.duration * tb)
        if stream.frames and stream.frames > 0 and stream.average_rate:
            own.append(stream.frames / float(stream.average_rate))
        tagged = _seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
        if tagged:  # Matroska's per-track tag: where the track ends, counted from 0
            own.append(tagged - (stream.start_time * tb if stream.start_time is not None else 0.0))
        if own:
            return max(own), True
        if container.duration and container.duration > 0:
            offset = 0.0
            if stream.start_time is not None and tb and container.start_time is not None:
                offset = stream.start_time * tb - container.start_time / 1e6
            return container.duration / 1e6 - offset, False
        return None

    def frames(self) -> Iterator[Frame]:
        av, stream = self._av, self._stream
        tb = float(stream.time_base)
        start = stream.start_time  # None: the first frame's
        index, last, interval = 0, None, 1.0 / self.fps
        backwards = 0
        packets = self._container.demux(stream)
        while True:
            where = "before the first frame" if last is None else f"after frame {index} (t = {last:.3f} s)"
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                self._problem(
                    f"{self.name}: reading stopped {where} (truncated or damaged file): {err}; "
                    f"the {index} decoded frame(s) are kept"
                )
                return
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as err:
                # decoding threads report an error with the packet they are given next: "near"
                at = "" if packet.pts is None or start is None else f"near t = {(packet.pts - start) * tb:.3f} s, "
                self._problem(
                    f"{self.name}: a packet {at}{where}, could not be decoded (damaged file): {err}; decoding went on"
                )
                continue
            for frame in decoded:
                if frame.width * frame.height > self._max_pixels:
                    self._problem(
                        f"{self.name}: frame {index + 1} is {frame.width}x{frame.height} pixels, over the "
                        "pixel cap: decoding stopped there"
                    )
                    return
                if frame.pts is None:
                    timestamp = 0.0 if last is None else last + interval
                else:
                    if start is None:
                        start = frame.pts
                    timestamp = (frame.pts - start) * tb
                if last is not None and timestamp > last:
                    interval = timestamp - last
                elif last is not None:
                    backwards += 1
                    if backwards == 1:
                        self._problem(
                            f"{self.name}: frame {index + 1}'s presentation time ({timestamp:.3f} s) is "
                            f"not after frame {index}'s ({last:.3f} s): the file's timing is damaged there; "
                            "its timestamps are written as the file gives them"
                        )
                yield Frame(index, timestamp, frame.to_ndarray(format="rgb24"))
                last = timestamp
                index += 1
        if backwards > 1:
            self._problem(f"{self.name}: {backwards} frames in all have a presentation time not after the frame before")
        if index == 0:
            self._problem(f"{self.name}: no frame could be decoded")
            return
        self._check_end(index, last, interval)

    def _check_end(self, frames: int, last: float, interval: float) -> None:
        """Report decoding that ended (frame ``frames``, shown at ``last`` for ``interval``
        seconds) well before the end the file declares."""
        if self._declared is None:
            return
        end, own = self._declared
        slack = max(self.SHORT_FRAMES / self.fps, self.SHORT_SECONDS if own else self.SHORT_SECONDS_CONTAINER)
        if end - (last + interval) > slack:
            self._problem(
                f"{self.name}: decoding stopped after frame {frames} (t = {last:.3f} s) of a video the file "
                f"says lasts {end:.3f} s (truncated or damaged file); the {frames} decoded frame(s) are kept"
            )

    def close(self) -> None:
        self._container.close()


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
