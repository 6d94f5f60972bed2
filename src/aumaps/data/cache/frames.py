"""Reading a manifest row's picture: image files, zip members and video frames.

``image`` entries of a manifest name an image file, a member of a zip archive
(``F001.zip#F001/T1/0001.jpg``, read without extracting) or a frame of a video
(``video.avi#123``, 0-based). Video frames are decoded in one pass from the start of the
video, yielding the frames a manifest names as they go by.

A zip member is read only once what it declares is within bounds: its uncompressed size
(:func:`max_member_bytes`, from the pixel cap) before anything is read, then the pixel count
of its image header (:func:`aumaps.images.check_pixels`) after its first 256 KB, so a zip
bomb or a gigapixel image in an archive is refused, named, without filling the memory.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator

import cv2
import numpy as np

from ...images import (
    MAX_PIXELS_ENV,
    ImageReadError,
    check_pixels,
    decode_image,
    image_size,
    pixel_cap,
    read_image,
)

__all__ = ["InvalidRow", "RowImages", "frame_ref", "max_member_bytes"]

#: A video frame reference, ``video.avi#123``.
_VIDEO_FRAME = re.compile(r"(.+)#(\d+)")
#: A member of a zip archive, ``F001.zip#F001/T1/0001.jpg``.
_ZIP_MEMBER = re.compile(r"(.+?\.zip)#(.+)", re.IGNORECASE)
#: Bytes of a zip member read first, for its image header (the size it declares).
_HEAD_BYTES = 256 * 1024
#: Room for what an image file holds besides its pixels (EXIF, ICC profiles, thumbnails).
_METADATA_BYTES = 16 * 1024 * 1024


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


def max_member_bytes() -> int:
    """The largest zip member (uncompressed) read as an image: what an uncompressed image at
    the pixel cap (:func:`aumaps.images.pixel_cap`) takes at 8 bytes a pixel (16-bit RGBA),
    plus 16 MB of metadata. A member that declares more is refused unread (a zip bomb)."""
    return 8 * pixel_cap() + _METADATA_BYTES


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
            data = self._read_member(self._archives[archive], name, archive)
        except (OSError, KeyError, zipfile.BadZipFile) as error:
            return InvalidRow("unreadable", f"cannot read '{name}' from '{archive}': {error}")
        except ImageReadError as error:  # too large: refused before it was read whole
            return InvalidRow("unreadable", f"'{name}' in '{archive}': {error.reason}")
        if isinstance(data, InvalidRow):
            return data
        try:
            return decode_image(data, f"{archive}#{name}")
        except ImageReadError as error:
            return InvalidRow("unreadable", f"'{name}' in '{archive}' is not a decodable image ({error.reason})")

    @staticmethod
    def _read_member(archive: zipfile.ZipFile, name: str, path: str) -> bytes | InvalidRow:
        """A member's bytes, read only once its declared size (the zip's entry) and the pixel
        count its image header declares are within bounds: a zip bomb, or a small file
        declaring a gigapixel, is refused having read at most :data:`_HEAD_BYTES`.

        Raises:
            ImageTooLarge: the header declares more pixels than the pixel cap.
        """
        info = archive.getinfo(name)
        limit = max_member_bytes()
        if info.file_size > limit:
            return InvalidRow(
                "unreadable",
                (
                    f"'{name}' in '{path}' declares {info.file_size:,} bytes uncompressed, more than an image at the "
                    f"pixel cap can take ({limit:,} bytes for {pixel_cap() / 1e6:,.0f} megapixels); not read "
                    f"(the environment variable {MAX_PIXELS_ENV} raises the cap)"
                ),
            )
        with archive.open(info) as stream:
            head = stream.read(_HEAD_BYTES)
            size = image_size(head, f"{path}#{name}")  # None: the header lies further in (decode_image checks)
            if size is not None:
                check_pixels(*size, f"{path}#{name}")
            return head + stream.read(limit + 1 - len(head))  # zipfile stops at the declared size

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
                    yield InvalidRow("unreadable", f"frame {index} cannot be decoded (the video ends before it)")
        finally:
            capture.release()
