"""Videos aumaps writes: the overlay video, each frame with its faces' AU maps and bars."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ..results import FaceResult, FrameResult
from .sources import VideoOpenError

__all__ = ["OverlayWriter"]

log = logging.getLogger(__name__)


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
        from ..visualise import draw_legend

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
        from ..visualise import draw_legend

        width = self._panel_width
        panel = np.full((height, width, 3), 32, np.uint8)
        legends = [draw_legend(f.aus, f.intensities, height, title=f"face {f.face_id}") for f in faces]
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
        from ..visualise import draw_faces

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
