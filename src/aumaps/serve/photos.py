"""Photos: an uploaded image in, its faces out, kept a while for the CSV and overlay downloads.

:func:`analyse_photo` decodes the saved upload by its content (:func:`aumaps.images.read_image`:
OpenCV, then Pillow; the name the client gave is only a label), deletes it, and runs the
shared estimator. What a download needs is kept in a :class:`PhotoStore` (bounded; the
oldest photos go first): the faces' numbers for the CSV, a display JPEG of the image, and
the overlay PNGs of :func:`aumaps.visualise.overlay` (what ``aumaps predict --maps`` writes),
drawn when asked for. Each photo's id is random: only the page that uploaded it knows it.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..images import ImageReadError, read_image
from ..results import FaceResult, FrameResult, ResultWriter
from ..visualise import overlay
from .models import SharedEstimator
from .payload import au_info, face_payload

__all__ = ["DISPLAY_SIDE", "Photo", "PhotoStore", "analyse_photo", "photos_csv"]

#: Longest side of the image the page shows (the coordinates sent are scaled to it).
DISPLAY_SIDE = 1600


@dataclass
class Photo:
    """One analysed photo.

    Attributes:
        id: random id (the page's handle on it).
        name: the client's file name, as a label.
        model: the model id that analysed it.
        aus: the model's AUs.
        image: the decoded RGB image (kept for the overlay downloads).
        faces: its faces (crops dropped).
        display: JPEG of the image, long side at most :data:`DISPLAY_SIDE`.
        scale: display pixels per image pixel.
    """

    id: str
    name: str
    model: str
    aus: tuple[int, ...]
    image: np.ndarray = field(repr=False)
    faces: list[FaceResult] = field(repr=False)
    display: bytes = field(repr=False)
    scale: float

    @property
    def nbytes(self) -> int:
        return self.image.nbytes + len(self.display) + sum(f.heatmaps.nbytes for f in self.faces)

    def overlay_png(self, face_id: int) -> bytes:
        """The overlay picture of face ``face_id`` (image with maps, and its legend), as PNG.

        Raises:
            KeyError: no such face.
        """
        if not any(f.face_id == face_id for f in self.faces):
            raise KeyError(f"photo '{self.name}' has no face {face_id}")
        picture = overlay(self.image, self.faces, face_index=face_id)
        ok, png = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise ValueError("PNG encoding failed")
        return png.tobytes()

    def summary(self, crop_size: int) -> dict[str, Any]:
        """What the page draws: image size, display scale, AUs and faces."""
        h, w = self.image.shape[:2]
        return {"id": self.id, "name": self.name, "model": self.model, "width": w, "height": h,
                "scale": self.scale, "aus": au_info(self.aus),
                "faces": [face_payload(f, crop_size) for f in self.faces],
                "message": None if self.faces else f"no face found in '{self.name}'"}


class PhotoStore:
    """The analysed photos, oldest dropped first beyond ``max_bytes`` (and ``max_photos``)."""

    def __init__(self, max_bytes: int = 1 << 30, max_photos: int = 500) -> None:
        self.max_bytes, self.max_photos = int(max_bytes), int(max_photos)
        self._photos: OrderedDict[str, Photo] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, photo: Photo) -> None:
        with self._lock:
            self._photos[photo.id] = photo
            while len(self._photos) > 1 and (len(self._photos) > self.max_photos
                                             or sum(p.nbytes for p in self._photos.values()) > self.max_bytes):
                self._photos.popitem(last=False)

    def get(self, photo_id: str) -> Photo:
        """Raises KeyError (with a message for the page) for an unknown or dropped photo."""
        with self._lock:
            photo = self._photos.get(photo_id)
        if photo is None:
            raise KeyError(f"no photo {photo_id!r} on this server (it was never uploaded here, or "
                           "older photos were dropped to save memory: upload it again)")
        return photo


def _display_jpeg(image: np.ndarray) -> tuple[bytes, float]:
    scale = min(1.0, DISPLAY_SIDE / max(image.shape[:2]))
    shown = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes(), shown.shape[1] / image.shape[1]


def analyse_photo(upload: Path, name: str, model_id: str, shared: SharedEstimator) -> Photo:
    """Decode the upload at ``upload`` (deleted afterwards) and analyse its faces.

    Raises:
        ImageReadError: the content is not an image OpenCV or Pillow can decode (the message
            names ``name``, never the server's file).
    """
    try:
        image = read_image(upload)
    except ImageReadError as err:
        raise ImageReadError(name, f"{err.reason} (videos go to the Videos tab)") from None
    finally:
        upload.unlink(missing_ok=True)
    with shared.lock:
        faces = shared.estimator.predict(image)
    display, scale = _display_jpeg(image)
    faces = [replace(f, crop=np.empty(0, np.uint8)) for f in faces]
    return Photo(secrets.token_urlsafe(12), name, model_id, shared.estimator.aus, image, faces, display, scale)


def photos_csv(photos: list[Photo]) -> str:
    """The photos' rows in the one CSV schema (with ``file``: each photo's name), in order.

    Raises:
        ValueError: the photos were analysed by models with different AUs.
    """
    if not photos:
        raise ValueError("no photo to write")
    aus = photos[0].aus
    if any(p.aus != aus for p in photos):
        raise ValueError("these photos were analysed by models with different AUs; download them separately")
    text = io.StringIO()
    with ResultWriter(text, aus, file_column=True) as writer:
        for index, photo in enumerate(photos):
            writer.write(FrameResult(index, 0.0, photo.faces, None, path=Path(photo.name)))
    return text.getvalue()
