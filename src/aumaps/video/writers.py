"""Videos aumaps writes: the overlay video, each frame with its faces' AU maps and bars."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..atomic import temporary_name
from ..results import FaceResult, FrameResult
from .sources import VideoOpenError

__all__ = ["OverlayWriter"]

#: The codec of each overlay suffix: MJPG for ``.avi``, VP8 for ``.webm`` (what browsers
#: play), MPEG-4 Part 2 (``mp4v``) otherwise.
_FOURCC = {".avi": "MJPG", ".webm": "VP80"}

log = logging.getLogger(__name__)


class OverlayWriter:
    """The overlay video: each frame with its faces' AU maps drawn where they sit
    (:func:`aumaps.visualise.draw_faces`) and, to its right, live intensity bars per face.

    Every input frame gives one output frame (an undecodable frame a dark one), so the
    overlay has the input's frame count. The codec follows the suffix: MJPG for ``.avi``,
    VP8 for ``.webm`` (plays in browsers), MPEG-4 Part 2 (``mp4v``) otherwise. The video is
    written under a temporary name (:func:`aumaps.atomic.temporary_name`) and renamed by
    :meth:`close`; :meth:`discard` drops it (an analysis that failed half-way).

    Raises:
        VideoOpenError: OpenCV cannot create the file.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, aus: Sequence[int]) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.aus = tuple(aus)
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._temporary: Path | None = None
        self._size: tuple[int, int] | None = None  # frame height, width
        self._panel_width = 0
        self._waiting = 0  # undecodable frames before the first image (size unknown yet)

    def _open(self, height: int, width: int) -> None:
        from ..visualise import draw_legend

        self._size = (height, width)
        self._panel_width = draw_legend(self.aus, None, height).shape[1]
        fourcc = _FOURCC.get(self.path.suffix.lower(), "mp4v")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = temporary_name(self.path, keep_suffix=True)  # the container follows the suffix
        self._writer = cv2.VideoWriter(
            str(self._temporary), cv2.VideoWriter_fourcc(*fourcc), self.fps, (width + self._panel_width, height)
        )
        if not self._writer.isOpened():
            self._temporary.unlink(missing_ok=True)
            raise VideoOpenError(f"cannot write the overlay video '{self.path}' (codec {fourcc})")

    def _panel(self, faces: Sequence[FaceResult], height: int) -> np.ndarray:
        """The intensity bars of each face (a grid of legends when there are several)."""
        from ..visualise import legend_panel

        return legend_panel(faces, self.aus, height, self._panel_width)

    def write(self, result: FrameResult) -> None:
        """Add the frame of ``result``."""
        from ..visualise import draw_faces, face_in_view

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
            faces = [face_in_view(f, scale) for f in faces]
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
        """Finish the file and rename it into place (frames still waiting for a size are
        dropped with a warning)."""
        if self._waiting:
            log.warning("%s: no frame could be decoded, no overlay written", self.path)
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._temporary, self.path)

    def discard(self) -> None:
        """Stop writing and remove what was written (nothing appears under :attr:`path`)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._temporary.unlink(missing_ok=True)
