"""Reading a manifest row's picture: image files, zip members and video frames.

``image`` entries of a manifest name an image file, a member of a zip archive
(``F001.zip#F001/T1/0001.jpg``, read without extracting) or a frame of a video
(``video.avi#123``, 0-based). Video frames are decoded in one pass from the start of the
video, yielding the frames a manifest names as they go by.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator

import cv2
import numpy as np

from ...images import ImageReadError, decode_image, read_image

__all__ = ["InvalidRow", "RowImages", "frame_ref"]

#: A video frame reference, ``video.avi#123``.
_VIDEO_FRAME = re.compile(r"(.+)#(\d+)")
#: A member of a zip archive, ``F001.zip#F001/T1/0001.jpg``.
_ZIP_MEMBER = re.compile(r"(.+?\.zip)#(.+)", re.IGNORECASE)


class InvalidRow(Exception):
    """A row that cannot be registered; ``kind`` is one of :data:`~aumaps.data.cache.format.FAILURE_KINDS`."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def frame_ref(image: str) -> tuple[str, int] | None:
    """``(video path, 0-based frame)`` of a ``video.avi#123`` reference; ``None`` for an
    image (or a zip member, or a file whose name happens to end in ``#123``)."""
    match = _VIDEO_FRAME.fullmatch(image)
    if match is None or os.path.exists(image):
        return None
    return match.group(1), int(match.group(2))




class RowImages:
    """Reads the pictures of manifest rows (keeps zip archives open between rows)."""

    def __init__(self) -> None:
        self._archives: dict[str, zipfile.ZipFile] = {}

    def read(self, image: str) -> np.ndarray | InvalidRow:
        """An image file or zip member as ``H×W×3`` uint8 RGB, or why it cannot be read."""
        member = _ZIP_MEMBER.fullmatch(image)
        if member is None or os.path.exists(image):
            try:
                return read_image(image)
            except ImageReadError as error:
                return InvalidRow("unreadable", error.reason)
        archive, name = member.groups()
        try:
            if archive not in self._archives:
                self._archives[archive] = zipfile.ZipFile(archive)
            data = self._archives[archive].read(name)
        except (OSError, KeyError, zipfile.BadZipFile) as error:
            return InvalidRow("unreadable", f"cannot read '{name}' from '{archive}': {error}")
        try:
            return decode_image(data, f"{archive}#{name}")
        except ImageReadError as error:
            return InvalidRow("unreadable", f"'{name}' in '{archive}' is not a decodable image ({error.reason})")

    @staticmethod
    def video_frames(path: str, images: list[str]) -> Iterator[np.ndarray | InvalidRow]:
        """The frames ``images`` name (``path#index``, in ascending order), decoded in one
        pass from the start of the video; frames that cannot be decoded are
        :class:`InvalidRow` values."""
        capture = cv2.VideoCapture(path)
        try:
            if not capture.isOpened():
                problem = "missing" if not os.path.exists(path) else "not a readable video"
                for _ in images:
                    yield InvalidRow("unreadable", f"cannot open video '{path}' ({problem})")
                return
            position = -1  # the last frame decoded or skipped
            last_index, frame = -1, None
            for image in images:
                index = frame_ref(image)[1]
                if index != last_index:
                    while position < index - 1 and capture.grab():
                        position += 1
                    frame = None
                    if position == index - 1:
                        ok, bgr = capture.read()
                        position, frame = (index, bgr) if ok else (position, None)
                    last_index = index
                if frame is not None:
                    yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                else:
                    yield InvalidRow(
                        "unreadable", f"frame {index} cannot be decoded (the video ends before it)"
                    )
        finally:
            capture.release()
