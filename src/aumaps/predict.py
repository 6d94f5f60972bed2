"""Prediction for people: images, folders, videos and live streams in, data frames and CSVs out.

:class:`AUEstimator` is the one object a user needs (py-feat and OpenFace users will find
the same shape of output: one row per face and frame, OpenFace 2.2's columns)::

    from aumaps import AUEstimator
    est = AUEstimator()                            # weights="default" | "official" | a checkpoint
    faces = est.predict("photo.jpg")               # list of FaceResult: intensities, maps, peaks
    table = est.predict_images(["a.jpg", "b/"])    # pandas DataFrame, one row per face
    table = est.predict_video("clip.mp4")          # one row per frame and face (tracked)
    for frame in est.stream(0):                    # webcam 0 (or a video file): FrameResult live
        print(frame.index, [f.intensities_dict() for f in frame.faces])

:func:`predict_files` and :func:`write_image_csv` are what ``aumaps predict`` runs on images;
videos go through :func:`aumaps.video.process_video`. All write the schema of
:mod:`aumaps.results`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from .estimator import Estimator
from .images import ImageReadError, list_images, read_image
from .results import FaceResult, FrameResult, ResultWriter, results_frame
from .video import FrameSource, VideoAnalyser, open_source, process_video

__all__ = ["AUEstimator", "FaceResult", "FrameResult", "predict_files", "write_image_csv"]

log = logging.getLogger(__name__)


class AUEstimator(Estimator):
    """Detect faces, register them and estimate AU intensities and maps, for images, videos
    and live streams. The arguments are :class:`aumaps.estimator.Estimator`'s."""

    def predict_images(
        self, paths: str | os.PathLike | Iterable[str | os.PathLike], progress: bool = False
    ) -> pd.DataFrame:
        """One row per face (and one ``success = 0`` row per image without a face) for image
        files and folders (searched recursively), in the CSV's schema with its ``file``
        column. Unreadable files are logged and left out."""
        results = []
        for result in predict_files(self, [paths] if isinstance(paths, (str, os.PathLike)) else paths, progress):
            if result.error:
                log.error("%s", result.error)
            else:
                results.append(result)
        return results_frame(results, self.aus, file_column=True)

    def stream(
        self, source: str | os.PathLike | int | FrameSource, redetect_every: int = 30, fps: float = 30.0
    ) -> Iterator[FrameResult]:
        """Frame results of a video file, an image-sequence folder, a webcam (its index) or a
        :class:`~aumaps.video.FrameSource`, as they become final (faces tracked, crops batched).

        For live use: each result holds the frame's image and its faces' intensities and maps.
        """
        src = source if isinstance(source, FrameSource) else open_source(source, fps=fps)
        analyser = VideoAnalyser(self, redetect_every=redetect_every)
        try:
            for frame in src.frames():
                yield from analyser.push(frame)
            yield from analyser.flush()
        finally:
            src.close()

    def predict_video(
        self, source: str | os.PathLike | int | FrameSource, redetect_every: int = 30, fps: float = 30.0
    ) -> pd.DataFrame:
        """One row per frame and face of a video (frames without a face keep a
        ``success = 0`` row), in the CSV's schema; see :meth:`stream`."""
        return results_frame(self.stream(source, redetect_every, fps), self.aus)

    def process_video(self, source: str | os.PathLike | int | FrameSource, csv_path: str | os.PathLike, **options):
        """Write a video's CSV (and ``overlay``, ``plot``, ``report`` if asked); see
        :func:`aumaps.video.process_video`."""
        src = source if isinstance(source, FrameSource) else open_source(source, fps=options.pop("fps", 30.0))
        return process_video(self, src, csv_path, **options)


def predict_files(
    estimator: Estimator, paths: Iterable[str | os.PathLike], progress: bool = True, max_pixels: int | None = None
) -> Iterator[FrameResult]:
    """Run ``estimator`` over images and folders, one :class:`~aumaps.results.FrameResult` per
    file (``index`` = its position, ``path`` = the file).

    A file that cannot be read yields a result with ``error`` set and no image; the rest go on.
    So does an image of more than ``max_pixels`` pixels (:func:`aumaps.images.pixel_cap`,
    100 megapixels, by default), refused from its header before anything is decoded.
    """
    from tqdm.auto import tqdm

    files = list_images(paths)
    for index, path in enumerate(tqdm(files, desc="images", unit="img", disable=not progress)):
        try:
            rgb = read_image(path, max_pixels)
        except ImageReadError as exc:
            yield FrameResult(index, 0.0, [], None, error=str(exc), path=Path(path))
            continue
        yield FrameResult(index, 0.0, estimator.predict(rgb), rgb, path=Path(path))


def write_image_csv(results: Iterable[FrameResult], out: str | os.PathLike, aus) -> Iterator[FrameResult]:
    """Stream image ``results`` into a CSV at ``out`` (the schema with ``file``), flushed file
    by file; a generator that passes each result on, so the caller can draw overlays or report
    errors as they come. Unreadable files have no row (they are reported as errors)."""
    with ResultWriter(out, aus, file_column=True) as writer:
        for result in results:
            if result.error is None:
                writer.write(result)
            yield result
