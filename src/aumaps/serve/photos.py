"""Photos: an uploaded image in, its faces out, kept a while for the CSV and overlay downloads.

:func:`analyse_photo` decodes the saved upload by its content (:func:`aumaps.images.read_image`:
its size read from the header and checked against the pixel cap first, then OpenCV, then
Pillow; the name the client gave is only a label), deletes it, finds the faces with the
worker's own detector and runs the shared estimator's network a few faces at a time
(:meth:`~aumaps.serve.models.SharedEstimator.analyse`). :class:`PhotoAnalyser` runs that in a
background thread (:mod:`aumaps.serve.workers`): never on the event loop, and never holding
the live views' lock for more than a few faces. What a download needs is kept in a
:class:`PhotoStore` (bounded; the oldest photos go first; deleted on request or after the
retention): the faces' numbers for the CSV, a display JPEG of the image, and the overlay
PNGs of :func:`aumaps.visualise.overlay` (what ``aumaps predict --maps`` writes), drawn when
asked for. Each photo's id is random: only the page that uploaded it knows it.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..images import ImageReadError, ImageTooLarge, read_image
from ..landmarks import FaceLandmarker
from ..readout import FaceInput
from ..results import FaceResult, FrameResult, ResultWriter
from ..visualise import overlay
from .errors import Graveyard
from .models import ModelCatalogue, SharedEstimator
from .payload import au_info, face_payload
from .workers import BackgroundPool

__all__ = ["DISPLAY_SIDE", "Photo", "PhotoAnalyser", "PhotoStore", "analyse_photo", "photos_csv"]

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
    added: float = field(default_factory=time.time)

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
        return {
            "id": self.id,
            "name": self.name,
            "model": self.model,
            "width": w,
            "height": h,
            "scale": self.scale,
            "aus": au_info(self.aus),
            "faces": [face_payload(f, crop_size) for f in self.faces],
            "message": None if self.faces else f"no face found in '{self.name}'",
        }


class PhotoStore:
    """The analysed photos, oldest dropped first beyond ``max_bytes`` (and ``max_photos``);
    :meth:`delete` and :meth:`expire` remove them on request and after the retention."""

    def __init__(self, max_bytes: int = 1 << 30, max_photos: int = 500) -> None:
        self.max_bytes, self.max_photos = int(max_bytes), int(max_photos)
        self._photos: OrderedDict[str, Photo] = OrderedDict()
        self._lock = threading.Lock()
        self.gone = Graveyard()

    def add(self, photo: Photo) -> None:
        with self._lock:
            self._photos[photo.id] = photo
            while len(self._photos) > 1 and (
                len(self._photos) > self.max_photos or sum(p.nbytes for p in self._photos.values()) > self.max_bytes
            ):
                dropped, _ = self._photos.popitem(last=False)
                self.gone.bury(dropped, "older photos were dropped to save the server's memory: upload it again")

    def get(self, photo_id: str) -> Photo:
        """Raises Gone (deleted, expired, dropped) or KeyError (with a message for the page)."""
        with self._lock:
            photo = self._photos.get(photo_id)
        if photo is None:
            self.gone.check(photo_id, "photo")
            raise KeyError(
                f"no photo {photo_id!r} on this server (it was never uploaded here, or the server was "
                "restarted since: upload it again)"
            )
        return photo

    def delete(self, photo_id: str, why: str = "deleted at your request") -> Photo:
        """Forget a photo (its image, faces and pictures: nothing of it stays on the server)."""
        with self._lock:
            photo = self._photos.pop(photo_id, None)
        if photo is None:
            return self.get(photo_id)  # raises
        self.gone.bury(photo_id, why)
        return photo

    def expire(self, before: float, why: str) -> list[str]:
        """Delete the photos added before ``before`` (a ``time.time()``); their ids."""
        with self._lock:
            old = [key for key, photo in self._photos.items() if photo.added < before]
        for key in old:
            self.delete(key, why)
        return old


def _display_jpeg(image: np.ndarray) -> tuple[bytes, float]:
    scale = min(1.0, DISPLAY_SIDE / max(image.shape[:2]))
    shown = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes(), shown.shape[1] / image.shape[1]


def analyse_photo(
    upload: Path,
    name: str,
    model_id: str,
    shared: SharedEstimator,
    landmarker: FaceLandmarker,
    max_pixels: int | None = None,
) -> Photo:
    """Decode the upload at ``upload`` (deleted afterwards) and analyse its faces: found by
    ``landmarker`` (the caller's own), their network maps computed under the shared lock a
    few faces at a time.

    Raises:
        ImageTooLarge: more pixels than ``max_pixels`` (the cap in force when ``None``); the
            size was read from the header, nothing was decoded.
        ImageReadError: the content is not an image OpenCV or Pillow can decode (the message
            names ``name``, never the server's file).
    """
    try:
        image = read_image(upload, max_pixels)
    except ImageTooLarge as err:
        raise ImageTooLarge(name, err.pixels, err.limit, err.width, err.height) from None
    except ImageReadError as err:
        raise ImageReadError(name, f"{err.reason} (videos go to the Videos tab)") from None
    finally:
        upload.unlink(missing_ok=True)
    found = [FaceInput(i, f.box, f.confidence, f.landmarks) for i, f in enumerate(landmarker(image))]
    faces = shared.analyse(image, found)
    display, scale = _display_jpeg(image)
    faces = [replace(f, crop=np.empty(0, np.uint8)) for f in faces]
    return Photo(secrets.token_urlsafe(12), name, model_id, shared.estimator.aus, image, faces, display, scale)


class PhotoAnalyser:
    """Analyses photos in a background pool (one at a time by default: the cores are the
    live views' first), each worker thread with its own face detector.

    Args:
        catalogue: where the shared estimators come from.
        workers: photos analysed at once.
        max_pixels: the pixel cap (the one in force when ``None``).
    """

    def __init__(self, catalogue: ModelCatalogue, workers: int = 1, max_pixels: int | None = None) -> None:
        self.catalogue, self.max_pixels = catalogue, max_pixels
        self._pool = BackgroundPool(workers, "aumaps-photo")
        self._local = threading.local()

    def _landmarker(self) -> FaceLandmarker:
        if not hasattr(self._local, "landmarker"):
            self._local.landmarker = self.catalogue.new_landmarker()
        return self._local.landmarker

    def _run(self, upload: Path, name: str, model_id: str) -> tuple[Photo, int]:
        try:
            shared = self.catalogue.shared(model_id)
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        photo = analyse_photo(upload, name, model_id, shared, self._landmarker(), self.max_pixels)
        return photo, shared.estimator.codec.crop_size

    async def analyse(self, upload: Path, name: str, model_id: str) -> tuple[Photo, int]:
        """The photo at ``upload`` (deleted afterwards) analysed off the event loop; with the
        model's crop size (for the page's map placement)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, upload, name, model_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


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
