"""What one ``aumaps serve`` holds while it runs (:class:`ServeState`), and the helpers its
routers share: the model a request names, an upload saved to the private folder."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import HTTPConnection, Request

from .errors import ApiError
from .jobs import JobManager
from .live import RecordingStore
from .models import ModelCatalogue
from .photos import PhotoAnalyser, PhotoStore
from .security import UploadFolder, UploadTooLarge, display_name, receive_upload

__all__ = ["ServeState", "model_id", "save_upload", "server_state"]

log = logging.getLogger(__name__)


@dataclass
class ServeState:
    """The server's models, stores and settings (``app.state.aumaps``).

    Attributes:
        retention: seconds finished jobs, photos and recordings are kept (``None``: until
            the server stops).
        max_pixels: the pixel cap (``None``: the one in force, :func:`aumaps.images.pixel_cap`).
    """

    catalogue: ModelCatalogue
    folder: UploadFolder
    jobs: JobManager
    photos: PhotoStore
    analyser: PhotoAnalyser
    recordings: RecordingStore
    max_upload_bytes: int
    max_pixels: int | None
    retention: float | None
    max_recorded_rows: int

    def expire(self, now: float | None = None) -> int:
        """Delete what is older than the retention; how many items went."""
        if self.retention is None:
            return 0
        before = (time.time() if now is None else now) - self.retention
        why = f"results are kept {describe_seconds(self.retention)} on this server (aumaps serve --retention)"
        gone = self.jobs.expire(before, why) + self.photos.expire(before, why) + self.recordings.expire(before, why)
        if gone:
            log.info("expired %d item(s) older than %s", len(gone), describe_seconds(self.retention))
        return len(gone)

    def shutdown(self) -> None:
        self.analyser.shutdown()
        self.jobs.shutdown()


def describe_seconds(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def server_state(connection: HTTPConnection) -> ServeState:
    """The state of the server a request or WebSocket came to."""
    return connection.app.state.aumaps


async def model_id(state: ServeState, requested: str | None) -> str:
    """The id of the model a request names (the initial one when it names none).

    Raises:
        ApiError: 400, no such model on offer (the message lists those that are).
    """
    try:
        return (await asyncio.to_thread(state.catalogue.get, requested)).id
    except KeyError as err:
        raise ApiError(400, f"model: {err.args[0]}") from None


async def save_upload(request: Request, state: ServeState, kind: str) -> Path:
    """The request's body, streamed into a new file of the private folder.

    Raises:
        ApiError: 413 over the size limit, 400 empty (the message names the client's file).
    """
    dest = state.folder.new_path(kind)
    name = display_name(request.query_params.get("name"))
    try:
        await receive_upload(request, dest, state.max_upload_bytes)
    except UploadTooLarge as err:
        raise ApiError(413, f"'{name}': {err}") from None
    except ValueError as err:
        raise ApiError(400, f"'{name}': {err}") from None
    return dest
