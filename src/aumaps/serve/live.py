"""The live webcam: one WebSocket per page, frames in, faces out, newest frame first.

The page sends camera frames as binary messages (:data:`HEADER`: frame id, capture time in
the page's milliseconds; then a JPEG). A :class:`LiveSession` keeps only the newest frame
that has not been analysed: while one frame is analysed, newer ones replace each other in a
one-frame slot (``skipped`` counts those dropped), so no queue grows and the result is as
fresh as the machine allows. Each session has its own face detector and tracker
(:class:`aumaps.tracking.FaceTracker`: detection every ``redetect_every`` frames, landmarks
tracked in between) and its own recording, so results never reach another page; sessions
(and photos) share the model's network, under a lock taken per frame's faces only
(:meth:`~aumaps.serve.models.SharedEstimator.analyse`): a photo being analysed does not
stop the live views.

Text messages (JSON objects): ``{"type": "record", "on": true|false}`` starts or stops
recording. Starting answers ``{"type": "recording", "on": true, "rows": 0, "max_rows": M}``:
the cap is announced at once, again as a warning when nine tenths of it are used, and a
recording that reaches it is stopped by the server. A stopped recording answers
``{"type": "recording", "on": false, "rows": N, "url": …}``: its rows, in the one CSV schema
(``timestamp``: seconds of the page's capture clock since recording started), were written
to a file as they came and download from ``url`` over HTTP (:class:`RecordingStore`).

Anything else the page may send (not JSON, not an object, an unknown command, a binary
message too short to be a frame, bytes that are no image, an image over the pixel cap) is
answered with ``{"type": "error", "message": …}`` and the session carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..images import ImageReadError, ImageTooLarge, decode_image
from ..results import FrameResult, ResultWriter
from ..tracking import FaceTracker
from ..weights import WeightsError
from .errors import Graveyard, status_of
from .models import ModelCatalogue, SharedEstimator
from .payload import au_info, face_payload
from .security import UploadFolder

__all__ = ["HEADER", "MAX_RECORDED_ROWS", "LiveSession", "Recorder", "Recording", "RecordingStore"]

log = logging.getLogger(__name__)

#: Binary frame message header: frame id (uint32), capture time in ms (float64), little-endian.
HEADER = struct.Struct("<Id")
#: What sending to or reading from a page that went away raises.
_GONE = (WebSocketDisconnect, RuntimeError, OSError)
#: Rows a recording keeps at most (about two hours at 15 frames/s, some 130 MB of CSV).
MAX_RECORDED_ROWS = 100_000
#: The share of the cap at which the page is warned.
WARN_AT = 0.9
_FRAME_FORMAT = (
    "a frame is a binary message: a 12-byte header (frame id: uint32, capture time in ms: float64, "
    "little-endian) followed by a JPEG or PNG image"
)


@dataclass
class Recording:
    """A stopped recording, kept for download (``/api/recordings/ID``)."""

    id: str
    path: Path
    rows: int
    filename: str
    added: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "rows": self.rows, "filename": self.filename, "url": f"/api/recordings/{self.id}"}


class RecordingStore:
    """The stopped recordings of every session (files in the private folder), until they are
    deleted, expire, or the server stops."""

    def __init__(self, folder: UploadFolder) -> None:
        self.folder = folder
        self._items: dict[str, Recording] = {}
        self._lock = threading.Lock()
        self.gone = Graveyard()

    def new_path(self) -> Path:
        return self.folder.new_path("recording")

    def add(self, path: Path, rows: int, started: float) -> Recording:
        stamp = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(started))
        recording = Recording(secrets.token_urlsafe(12), path, rows, f"aumaps-live-{stamp}.csv")
        with self._lock:
            self._items[recording.id] = recording
        return recording

    def get(self, recording_id: str) -> Recording:
        """Raises Gone (deleted, expired) or KeyError."""
        with self._lock:
            recording = self._items.get(recording_id)
        if recording is None:
            self.gone.check(recording_id, "recording")
            raise KeyError(f"no recording {recording_id!r} on this server")
        return recording

    def delete(self, recording_id: str, why: str = "deleted at your request") -> Recording:
        with self._lock:
            recording = self._items.pop(recording_id, None)
        if recording is None:
            return self.get(recording_id)  # raises
        recording.path.unlink(missing_ok=True)
        self.gone.bury(recording_id, why)
        return recording

    def expire(self, before: float, why: str) -> list[str]:
        with self._lock:
            old = [key for key, item in self._items.items() if item.added < before]
        for key in old:
            self.delete(key, why)
        return old


class Recorder:
    """A session's recording: frame results written as CSV rows to a file as they come
    (thread-safe), at most ``max_rows`` rows."""

    def __init__(self, aus, max_rows: int = MAX_RECORDED_ROWS) -> None:
        self.aus = tuple(aus)
        self.max_rows = int(max_rows)
        self._lock = threading.Lock()
        self._file = None
        self._writer: ResultWriter | None = None
        self._path: Path | None = None
        self._start: float | None = None
        self._frames = 0
        self.started = 0.0
        self.warned = False

    @property
    def on(self) -> bool:
        return self._writer is not None

    @property
    def rows(self) -> int:
        return 0 if self._writer is None else self._writer.rows

    @property
    def full(self) -> bool:
        return self._writer is not None and self._writer.rows >= self.max_rows

    def start(self, path: Path) -> None:
        with self._lock:
            if self._writer is not None:
                return
            self._path = path
            self._file = open(path, "x", encoding="utf-8", newline="")
            self._writer = ResultWriter(self._file, self.aus)
            self._start, self._frames, self.started, self.warned = None, 0, time.time(), False

    def write(self, faces, captured_ms: float) -> int | None:
        """Record one frame's faces; the rows so far (``None`` when not recording)."""
        with self._lock:
            if self._writer is None or self._writer.rows >= self.max_rows:
                return None if self._writer is None else self._writer.rows
            if self._start is None:
                self._start = captured_ms
            self._writer.write(FrameResult(self._frames, (captured_ms - self._start) / 1000.0, faces))
            self._frames += 1
            return self._writer.rows

    def stop(self) -> tuple[int, Path | None]:
        """End the recording: its rows and its file (``None`` when none was running)."""
        with self._lock:
            if self._writer is None:
                return 0, None
            rows, path = self._writer.rows, self._path
            self._file.close()
            self._writer, self._file, self._path = None, None, None
            return rows, path


class _Refusal(Exception):
    """A message from the page that is answered with an error (the session goes on)."""


class LiveSession:
    """One page's live view over ``websocket``.

    Args:
        websocket: the page's socket (not yet accepted).
        catalogue: the models; the page names one with ``?model=``.
        recordings: where stopped recordings go for download.
        redetect_every: run the face detector at least every this many analysed frames.
        max_pixels: the pixel cap for frames (the one in force when ``None``).
        max_rows: the recording's cap.
    """

    def __init__(
        self,
        websocket: WebSocket,
        catalogue: ModelCatalogue,
        recordings: RecordingStore,
        redetect_every: int = 30,
        max_pixels: int | None = None,
        max_rows: int = MAX_RECORDED_ROWS,
    ) -> None:
        self.ws = websocket
        self.catalogue = catalogue
        self.recordings = recordings
        self.redetect_every = redetect_every
        self.max_pixels = max_pixels
        self.max_rows = max_rows
        self._latest: tuple[int, float, bytes] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._send_lock = asyncio.Lock()
        self.skipped = 0

    async def send(self, message: dict[str, Any]) -> None:
        try:
            text = json.dumps(message, allow_nan=False)
        except ValueError as err:  # a number the page's JSON cannot read: say so instead
            log.error("live message not sent (%s): %r", err, message)
            text = json.dumps({"type": "error", "id": message.get("id"), "message": f"internal error: {err}"})
        async with self._send_lock:
            await self.ws.send_text(text)

    async def run(self) -> None:
        """Serve the page until it goes away; never raises for a client's doing."""
        await self.ws.accept()
        model_id = self.ws.query_params.get("model") or None
        try:
            choice = await asyncio.to_thread(self.catalogue.get, model_id)
            self.shared = await asyncio.to_thread(self.catalogue.shared, choice.id)
            landmarker = await asyncio.to_thread(self.catalogue.new_landmarker)
        except Exception as err:
            message = err.args[0] if isinstance(err, (KeyError, WeightsError)) and err.args else status_of(err)[1]
            await self._close_with(f"cannot load the model: {message}")
            return
        self.tracker = FaceTracker(landmarker, redetect_every=self.redetect_every)
        self.recorder = Recorder(self.shared.estimator.aus, self.max_rows)
        receiver = asyncio.create_task(self._receive())
        try:
            await self.send(
                {
                    "type": "ready",
                    "model": choice.id,
                    "card": choice.card,
                    "aus": au_info(self.shared.estimator.aus),
                    "max_recorded_rows": self.max_rows,
                }
            )
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._closed:
                    break
                if self._latest is None:
                    continue
                frame, self._latest = self._latest, None
                try:
                    reply = await asyncio.to_thread(self._analyse, *frame)
                except Exception as err:  # one bad frame must not end the session
                    log.exception("live frame %s failed", frame[0])
                    reply = {"type": "error", "id": frame[0], "message": f"frame {frame[0]} failed: {err}"}
                await self.send(reply)
                await self._recording_news()
        except _GONE as err:  # the page went away mid-stream
            log.info("live session closed: %s", type(err).__name__)
        finally:
            self._closed = True
            receiver.cancel()
            if self.recorder.on:  # the page left while recording: keep what was recorded
                await asyncio.to_thread(self._stop_recording)

    async def _close_with(self, message: str) -> None:
        try:
            await self.send({"type": "error", "message": message, "fatal": True})
            await self.ws.close(code=1011)
        except _GONE:
            pass

    async def _receive(self) -> None:
        """Read the page's messages: keep the newest frame, act on commands, answer anything
        else with an error and go on."""
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    if message.get("bytes") is not None:
                        self._take_frame(message["bytes"])
                    elif message.get("text") is not None:
                        await self._command(message["text"])
                    continue
                except _Refusal as refusal:
                    reply = str(refusal)
                except Exception as err:  # a bug must not end the session either (a page gone: the send below)
                    log.exception("live message not handled")
                    reply = status_of(err)[1]
                await self.send({"type": "error", "message": reply})
        except _GONE:
            pass
        finally:
            self._closed = True
            self._wake.set()

    def _take_frame(self, data: bytes) -> None:
        if len(data) <= HEADER.size:
            raise _Refusal(f"{_FRAME_FORMAT}; this one has {len(data)} bytes")
        frame_id, captured = HEADER.unpack_from(data)
        if not math.isfinite(captured):
            raise _Refusal(f"frame {frame_id}: the capture time is not a number; {_FRAME_FORMAT}")
        if self._latest is not None:
            self.skipped += 1
        self._latest = (frame_id, captured, data[HEADER.size :])
        self._wake.set()

    async def _command(self, text: str) -> None:
        try:
            command = json.loads(text)
        except ValueError:
            command = None
        if not isinstance(command, dict):
            raise _Refusal('a text message must be a JSON object, e.g. {"type": "record", "on": true}')
        kind = command.get("type")
        if kind != "record":
            raise _Refusal(f'unknown command {kind!r}: the one command is {{"type": "record", "on": true|false}}')
        on = command.get("on")
        if not isinstance(on, bool):
            raise _Refusal(f'"on" must be true or false, not {json.dumps(on)}')
        if on:
            if not self.recorder.on:
                await asyncio.to_thread(self.recorder.start, self.recordings.new_path())
            await self.send(
                {"type": "recording", "on": True, "rows": self.recorder.rows, "max_rows": self.recorder.max_rows}
            )
        else:
            await self.send(await asyncio.to_thread(self._stop_recording))

    def _stop_recording(self, note: str | None = None) -> dict[str, Any]:
        started = self.recorder.started
        rows, path = self.recorder.stop()
        message: dict[str, Any] = {
            "type": "recording",
            "on": False,
            "rows": rows,
            "max_rows": self.recorder.max_rows,
            "url": None,
            "message": note,
        }
        if path is not None:
            message.update(self.recordings.add(path, rows, started).public())
        return message

    async def _recording_news(self) -> None:
        """Tell the page the recording is nearly full, or that it was stopped at its cap."""
        recorder = self.recorder
        if not recorder.on:
            return
        if recorder.full:
            await self.send(
                await asyncio.to_thread(
                    self._stop_recording,
                    f"the recording reached its cap of {recorder.max_rows:,} rows and was "
                    "stopped; download it, and press Record again for another",
                )
            )
        elif not recorder.warned and recorder.rows >= WARN_AT * recorder.max_rows:
            recorder.warned = True
            await self.send(
                {
                    "type": "recording",
                    "on": True,
                    "rows": recorder.rows,
                    "max_rows": recorder.max_rows,
                    "warning": f"the recording is {recorder.rows:,} of its {recorder.max_rows:,} rows: it "
                    "stops by itself at the cap (stop it now to download, then record again)",
                }
            )

    def _analyse(self, frame_id: int, captured: float, data: bytes) -> dict[str, Any]:
        """One frame through tracker and network (in a worker thread)."""
        start = time.perf_counter()
        try:
            rgb = decode_image(data, f"frame {frame_id}", self.max_pixels)
        except ImageTooLarge as err:
            return {"type": "error", "id": frame_id, "captured": captured, "message": f"frame {frame_id}: {err.reason}"}
        except ImageReadError:
            return {
                "type": "error",
                "id": frame_id,
                "captured": captured,
                "message": f"frame {frame_id} could not be decoded as an image ({_FRAME_FORMAT})",
            }
        shared: SharedEstimator = self.shared
        tracked = self.tracker.update(rgb)  # this session's own detector: no lock
        # the shared network, its lock held for these faces only; no shift test (a fifth of its time)
        faces = shared.analyse(rgb, tracked, shift_test=False)
        rows = self.recorder.write(faces, captured)
        crop = shared.estimator.codec.crop_size
        return {
            "type": "result",
            "id": frame_id,
            "captured": captured,
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
            "faces": [face_payload(f, crop) for f in faces],
            "message": None if faces else "no face in view: face the camera, in good light",
            "server_ms": round(1000 * (time.perf_counter() - start), 1),
            "skipped": self.skipped,
            "recorded_rows": rows,
        }
