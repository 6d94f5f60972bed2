"""Video jobs: an uploaded video analysed in the background, with progress and results.

A :class:`VideoJob` runs :func:`aumaps.video.process_video` (the CSV in the one schema, the
overlay video, the HTML report with its plot, per-AU statistics and peak frames) in a
worker thread of the :class:`JobManager`, each worker with its own estimator, at a lower
scheduling priority than the live views (:mod:`aumaps.serve.workers`). Progress is counted
as frames leave the decoder (:class:`_WatchedSource`), which also stops a cancelled job. The
overlay is written as VP8/WebM, which browsers play (OpenCV's MPEG-4 Part 2 they do not).

The data is the user's: the uploaded video is deleted when the job ends; :meth:`JobManager.cancel`
stops a job (a queued one is cancelled at once), :meth:`JobManager.delete` also removes its
files, and :meth:`JobManager.expire` removes finished jobs after the server's retention. A
job's id is random: the page keeps it in its URL and finds the job again after a reload; no
listing shows it to other clients.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..images import ImageReadError, ImageTooLarge, read_image
from ..video import Frame, FrameSource, VideoFileSource, VideoOpenError, process_video
from .errors import Graveyard
from .models import ModelCatalogue
from .workers import BackgroundPool

__all__ = ["JobManager", "VideoJob", "open_video"]

log = logging.getLogger(__name__)

#: Uploads up to this size are first tried as still images (see :func:`open_video`).
STILL_CHECK_BYTES = 64 * 1024 * 1024
#: The states of a job, in order.
STATES = ("queued", "running", "done", "failed", "cancelled")


@dataclass
class VideoJob:
    """One video being (or having been) analysed.

    Attributes:
        id: random id.
        name: the client's file name, as a label.
        model: the model id.
        folder: the job's private folder (upload, then outputs).
        state: one of :data:`STATES`.
        frames_done, frame_count: progress (``frame_count`` None when the file does not say).
        message: what went wrong, or a note (no face found...).
        problems: messages about damaged frames.
        summary: frames, frames with a face, faces, speed (when done).
        outputs: kind -> file, for the downloads.
        created, finished: ``time.time()`` of its upload and of its end (``None`` until then).
        deleted: its files are to be removed as soon as its worker lets go of them.
    """

    id: str
    name: str
    model: str
    folder: Path
    state: str = "queued"
    frames_done: int = 0
    frame_count: int | None = None
    message: str | None = None
    problems: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    finished: float | None = None
    deleted: bool = False
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def upload(self) -> Path:
        return self.folder / "upload"

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def status(self, retention: float | None = None) -> dict[str, Any]:
        """The job as the page polls it (``expires_in``: seconds its results stay, with a
        ``retention``)."""
        if self.frame_count:
            fraction = 0.99 * min(self.frames_done / self.frame_count, 1.0)
        else:
            fraction = None
        expires = None
        if retention is not None and self.finished is not None:
            expires = round(max(0.0, self.finished + retention - time.time()), 1)
        return {
            "id": self.id,
            "name": self.name,
            "model": self.model,
            "state": self.state,
            "frames_done": self.frames_done,
            "frame_count": self.frame_count,
            "fraction": 1.0 if self.state == "done" else fraction,
            "message": self.message,
            "problems": self.problems[:20],
            "summary": self.summary,
            "outputs": {kind: f"/api/jobs/{self.id}/{kind}" for kind in self.outputs},
            "expires_in": expires,
        }


class _WatchedSource(FrameSource):
    """A video file source that counts the frames handed on and stops when the job is cancelled."""

    def __init__(self, inner: VideoFileSource, job: VideoJob) -> None:
        super().__init__()
        self.inner, self.job = inner, job
        self.name, self.fps, self.frame_count = job.name, inner.fps, inner.frame_count
        inner.name = job.name  # messages name the user's file, not the server's
        self.problems = inner.problems

    def frames(self) -> Iterator[Frame]:
        for frame in self.inner.frames():
            if self.job.cancel.is_set():
                self._problem(f"{self.name}: stopped at frame {frame.index + 1} (cancelled)")
                return
            self.job.frames_done = frame.index + 1
            yield frame

    def close(self) -> None:
        self.inner.close()


def open_video(path: Path, name: str, max_pixels: int | None = None) -> VideoFileSource:
    """The uploaded video at ``path`` (``name`` is the user's file name, for messages).

    Raises:
        VideoOpenError: the content is not a video FFmpeg can decode, its frames are over
            the pixel cap (read from the stream's header), or it is a still image (FFmpeg
            would open one as a video of one frame; files over :data:`STILL_CHECK_BYTES` are
            not looked at as images; an image over the pixel cap is recognised from its
            header, never decoded). Messages name ``name``, never the server's file.
    """
    if path.stat().st_size <= STILL_CHECK_BYTES:
        try:
            read_image(path, max_pixels)
        except ImageTooLarge as err:
            raise VideoOpenError(
                f"'{name}' is a still image ({err.width}x{err.height} pixels, over the pixel cap too), not a video"
            ) from None
        except ImageReadError:
            pass
        else:
            raise VideoOpenError(f"'{name}' is a still image, not a video: drop it on the Photos tab")
    try:
        source = VideoFileSource(path, max_pixels=max_pixels)
    except ImageTooLarge as err:
        raise ImageTooLarge(name, err.pixels, err.limit, err.width, err.height) from None
    except VideoOpenError as err:  # its reason, with the user's name for the server's file
        raise VideoOpenError(str(err).replace(str(path), name)) from None
    except (FileNotFoundError, ImageReadError):
        raise VideoOpenError(
            f"cannot open '{name}' as a video: it is not a video FFmpeg can decode "
            "(damaged, truncated, or an unsupported codec)"
        ) from None
    source.name = name
    return source


class JobManager:
    """Runs video jobs, ``workers`` at a time; each worker thread keeps its own estimators.

    Args:
        catalogue: where estimators come from.
        workers: jobs analysed at once (more wait, ``queued``).
        max_pixels: the pixel cap of the videos' frames (the one in force when ``None``).
    """

    def __init__(self, catalogue: ModelCatalogue, workers: int = 2, max_pixels: int | None = None) -> None:
        self.catalogue = catalogue
        self.max_pixels = max_pixels
        self._jobs: dict[str, VideoJob] = {}
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool = BackgroundPool(workers, "aumaps-job")
        self.gone = Graveyard()

    def submit(self, job: VideoJob) -> VideoJob:
        """Queue ``job`` (its upload already in ``job.folder``)."""
        with self._lock:
            self._jobs[job.id] = job
            self._futures[job.id] = self._pool.submit(self._run, job)
        return job

    @staticmethod
    def new(folder: Path, name: str, model: str) -> VideoJob:
        return VideoJob(folder.name, name, model, folder)

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(12)

    def get(self, job_id: str) -> VideoJob:
        """Raises Gone (deleted or expired) or KeyError (with a message for the page)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            self.gone.check(job_id, "video job")
            raise KeyError(f"no video job {job_id!r} on this server (it ran on a server that has stopped since?)")
        return job

    def cancel(self, job_id: str) -> VideoJob:
        """Stop a job: a queued one is cancelled at once (its upload deleted), a running one
        stops at its next frame (what was analysed until then is kept, as after Ctrl-C)."""
        job = self.get(job_id)
        with self._lock:
            job.cancel.set()
            if job.state == "queued":
                job.state, job.message, job.finished = "cancelled", "cancelled before it started", time.time()
                future = self._futures.pop(job.id, None)
                if future is not None:
                    future.cancel()
                job.upload.unlink(missing_ok=True)
        return job

    def delete(self, job_id: str, why: str = "deleted at your request") -> VideoJob:
        """Stop a job and remove it with its files (upload, CSV, report, overlay): at once
        when it has ended, else as soon as its worker lets go of them."""
        job = self.cancel(job_id)
        with self._lock:
            self._jobs.pop(job.id, None)
            self.gone.bury(job.id, why)
            job.deleted = True
            remove_now = job.ended
        if remove_now:
            shutil.rmtree(job.folder, ignore_errors=True)
        return job

    def expire(self, before: float, why: str) -> list[str]:
        """Delete the jobs that ended before ``before`` (a ``time.time()``); their ids.
        Queued and running jobs are never expired."""
        with self._lock:
            old = [j.id for j in self._jobs.values() if j.finished is not None and j.finished < before]
        for job_id in old:
            self.delete(job_id, why)
        return old

    def shutdown(self) -> None:
        """Stop every job and wait for the workers."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _estimator(self, model_id: str):
        cache = self._local.__dict__.setdefault("estimators", {})
        if model_id not in cache:
            cache[model_id] = self.catalogue.load(model_id)
        return cache[model_id]

    def _end(self, job: VideoJob, state: str, message: str | None = None) -> None:
        with self._lock:
            job.state, job.finished = state, time.time()
            if message is not None:
                job.message = message
            self._futures.pop(job.id, None)

    def _run(self, job: VideoJob) -> None:
        with self._lock:
            if job.cancel.is_set():  # cancelled while queued: already says so
                return
            job.state = "running"
        try:
            source = open_video(job.upload, job.name, self.max_pixels)
            job.frame_count = source.frame_count
            estimator = self._estimator(job.model)
            watched = _WatchedSource(source, job)
            summary = process_video(
                estimator,
                watched,
                job.folder / "results.csv",
                overlay=job.folder / "overlay.webm",
                report=job.folder / "report",
                progress=False,
            )
            job.problems = list(summary.problems)
            job.summary = {
                "frames": summary.frames,
                "frames_with_face": summary.frames_with_face,
                "faces": summary.face_ids,
                "fps": round(summary.fps, 2),
                "seconds": round(summary.seconds, 2),
            }
            job.outputs["csv"] = summary.outputs["csv"]
            job.outputs["report"] = summary.outputs["report"]
            if not job.cancel.is_set() and summary.frames == 0:
                raise VideoOpenError(f"no frame of '{job.name}' could be decoded")
            if "overlay" in summary.outputs:
                job.outputs["overlay"] = summary.outputs["overlay"]
            if job.cancel.is_set():
                self._end(job, "cancelled", f"stopped after {summary.frames} frames")
                return
            if summary.frames_with_face == 0:
                job.message = f"no face found in any of the {summary.frames} frames of '{job.name}'"
            self._end(job, "done")
        except Exception as err:  # the job fails with a message; the server keeps serving
            if job.cancel.is_set():
                self._end(job, "cancelled", "stopped")
            else:
                log.warning("video job %s (%s) failed: %s", job.id, job.name, err)
                self._end(job, "failed", str(err))
        finally:
            job.upload.unlink(missing_ok=True)
            with self._lock:
                remove = job.deleted
            if remove:
                shutil.rmtree(job.folder, ignore_errors=True)
