"""Frames in, AU results out: tracking, batching, smoothing, and one source end to end.

The pipeline, per source::

    frames (decoded in a background thread, bounded queue; :mod:`aumaps.video.sources`)
      -> faces: detected, then tracked from frame to frame (:class:`aumaps.tracking.FaceTracker`)
      -> registered crops, batched across frames through the network (:class:`VideoAnalyser`)
      -> optional temporal smoothing of the intensities (:class:`IntensitySmoother`)
      -> CSV rows in the schema of :mod:`aumaps.results` (flushed frame by frame), overlay
         video (:mod:`aumaps.video.writers`), plot, HTML report

Every frame has at least one row: a frame without a face, or one that could not be decoded,
has a row with ``success = 0``, ``face_id = -1`` and empty cells.

**Smoothing** (off by default; :class:`IntensitySmoother`) replaces each face's
intensities with an exponential moving average (``ema:ALPHA``, causal) or a centred moving
average over ``K`` frames (``window:K``, looks ``K // 2`` frames ahead) of the same track.
Heatmaps and landmarks are never smoothed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..estimator import Estimator
from ..readout import FaceInput
from ..results import FaceResult, FrameResult, ResultWriter
from ..timing import StageTimes
from ..tracking import FaceTracker, TrackedFace
from .sources import Frame, FrameReader, FrameSource
from .writers import OverlayWriter

__all__ = ["IntensitySmoother", "VideoAnalyser", "VideoSummary", "process_video"]

log = logging.getLogger(__name__)


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
                previous = self._state.get(face.face_id)
                value = (
                    face.intensities
                    if previous is None
                    else (self.alpha * face.intensities + (1 - self.alpha) * previous)
                )
                alive[face.face_id] = value
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
        near = list(self._window)[max(i - half, 0) : i + half + 1]
        result = self._window[i]
        faces = []
        for face in result.faces:
            values = [f.intensities for r in near for f in r.faces if f.face_id == face.face_id]
            faces.append(replace(face, intensities=np.mean(values, axis=0)))
        return replace(result, faces=faces)


class VideoAnalyser:
    """Frames in, :class:`FrameResult` out: tracking, registration, batched network.

    Crops of consecutive frames are gathered until ``estimator.batch_size`` crops (or as
    many frames) are waiting, then run through the network together. :meth:`push` returns
    the results that became final, in frame order; :meth:`flush` the rest (at the end, or
    after Ctrl-C: frames already tracked are still analysed).

    Args:
        estimator: network, codec and landmarker (its engine decides the precision).
        tracker: a :class:`~aumaps.tracking.FaceTracker` over ``estimator.landmarker`` by
            default, re-detecting at least every ``redetect_every`` frames.
        smoother: optional :class:`IntensitySmoother`.
        times: where registration and network times are added.
        redetect_every: see ``tracker``.
    """

    def __init__(
        self,
        estimator: Estimator,
        tracker: FaceTracker | None = None,
        smoother: IntensitySmoother | None = None,
        times: StageTimes | None = None,
        redetect_every: int = 30,
    ) -> None:
        self.estimator = estimator
        self.times = times or (tracker.times if tracker else StageTimes())
        self.tracker = tracker or FaceTracker(estimator.landmarker, redetect_every=redetect_every, times=self.times)
        self.smoother = smoother
        self._pending: list[tuple[Frame, list[TrackedFace], np.ndarray, np.ndarray]] = []

    def push(self, frame: Frame) -> list[FrameResult]:
        """Track and register ``frame``; results that became final."""
        faces = [] if frame.image is None else self.tracker.update(frame.image)
        with self.times("register"):
            faces, mats, crops = self.estimator.register(frame.image, faces)
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

    def _run(self) -> list[FrameResult]:
        pending = self._pending
        faces = iter(
            self._analyse(
                np.concatenate([p[3] for p in pending]),
                np.concatenate([p[2] for p in pending]),
                [face for p in pending for face in p[1]],
            )
        )
        results = [
            FrameResult(frame.index, frame.timestamp, [next(faces) for _ in tracked], frame.image, frame.error)
            for frame, tracked, _, _ in pending
        ]
        self._pending = []
        if self.smoother is None:
            return results
        return [final for r in results for final in self.smoother.push(r)]

    def _analyse(self, crops: np.ndarray, mats: np.ndarray, faces: list[FaceInput]) -> list[FaceResult]:
        """One :class:`FaceResult` per crop (``(N, S, S, 3)``, registered by ``(N, 2, 3)`` mats)."""
        if not len(crops):
            return []
        with self.times("network"):
            maps = self.estimator.heatmaps(crops)
        with self.times("readout"):
            return self.estimator.read(maps, mats, crops, faces)

    def run(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        """All results of ``frames``, in order."""
        for frame in frames:
            yield from self.push(frame)
        yield from self.flush()


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
    estimator: Estimator,
    source: FrameSource,
    csv_path: str | os.PathLike[str],
    overlay: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
    smoother: IntensitySmoother | None = None,
    redetect_every: int = 30,
    progress: bool = True,
    on_result: Callable[[FrameResult], None] | None = None,
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
        on_result: called with every frame's final result, in frame order, once its rows
            are written (progress of a larger job, the AU maps for a per-person baseline...).

    Ctrl-C (SIGINT, when called from the main thread) stops decoding: frames already decoded
    are analysed and written, the overlay, plot and report cover them, and the summary says
    ``interrupted``. A second Ctrl-C aborts at once (the CSV keeps the rows
    written so far).
    """
    from tqdm.auto import tqdm

    from .. import report as reporting

    times = StageTimes()
    tracker = FaceTracker(estimator.landmarker, redetect_every=redetect_every, times=times)
    analyser = VideoAnalyser(estimator, tracker, smoother, times)
    summary = VideoSummary(source.name, problems=source.problems)
    peaks = reporting.PeakFrames(estimator.aus) if report else None
    overlay_writer = OverlayWriter(overlay, source.fps, estimator.aus) if overlay else None
    ids: set[int] = set()
    start = time.perf_counter()
    reader = FrameReader(source, times=times)
    with (
        _on_interrupt(reader.stop) as interrupted,
        ResultWriter(csv_path, estimator.aus) as writer,
        reader,
        tqdm(
            total=source.frame_count, desc=Path(source.name).name, unit="frame", disable=not progress, leave=False
        ) as bar,
    ):

        def emit(results: list[FrameResult]) -> None:
            for result in results:
                with times("write"):
                    writer.write(result)
                    if overlay_writer is not None:
                        overlay_writer.write(result)
                    if peaks is not None:
                        peaks.update(result)
                if on_result is not None:
                    on_result(result)
                summary.frames += 1
                summary.frames_with_face += bool(result.faces)
                summary.unreadable += result.image is None
                ids.update(f.face_id for f in result.faces)
                bar.update(1)

        try:
            for frame in reader:
                emit(analyser.push(frame))
            emit(analyser.flush())
        except BaseException:
            if overlay_writer is not None:  # no half-written overlay under its name
                overlay_writer.discard()
            raise
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
                "network engine": estimator.engine.describe(),
                "smoothing": "none" if smoother is None else smoother.describe(),
                "speed": f"{summary.fps:.1f} frames/s",
            }
            if summary.interrupted:
                facts["stopped"] = "interrupted (Ctrl-C): the frames analysed until then"
            summary.outputs["report"] = reporting.write_report(
                report, table, estimator.aus, peaks=peaks, title=source.name, facts=facts
            )
    return summary
