"""The live webcam: one WebSocket per page, frames in, faces out, newest frame first.

The page sends camera frames as binary messages (:data:`HEADER`: frame id, capture time in
the page's milliseconds; then a JPEG). A :class:`LiveSession` keeps only the newest frame
that has not been analysed: while one frame is analysed, newer ones replace each other in a
one-frame slot (``skipped`` counts those dropped), so no queue grows and the result is as
fresh as the machine allows. Each session has its own face tracker
(:class:`aumaps.tracking.FaceTracker`: detection every ``redetect_every`` frames, landmarks
tracked in between) and its own recording, so results never reach another page; sessions
share the model's estimator under its lock.

Text messages: ``{"type": "record", "on": true|false}`` starts or stops recording; stopping
answers ``{"type": "recording", "rows": N, "csv": …}`` with the session's rows in the one CSV
schema (``timestamp``: seconds of the page's capture clock since recording started).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import struct
import threading
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..images import ImageReadError, decode_image
from ..results import FrameResult, ResultWriter
from ..tracking import FaceTracker
from ..weights import WeightsError
from .models import ModelCatalogue, SharedEstimator
from .payload import au_info, face_payload

__all__ = ["HEADER", "LiveSession", "Recorder"]

log = logging.getLogger(__name__)

#: Binary frame message header: frame id (uint32), capture time in ms (float64), little-endian.
HEADER = struct.Struct("<Id")
#: What sending to or reading from a page that went away raises.
_GONE = (WebSocketDisconnect, RuntimeError, OSError)
#: Rows a recording keeps at most (about two hours at 15 frames/s).
MAX_RECORDED_ROWS = 100_000


class Recorder:
    """A session's recording: frame results written as CSV rows in memory (thread-safe)."""

    def __init__(self, aus) -> None:
        self.aus = tuple(aus)
        self._lock = threading.Lock()
        self._text: io.StringIO | None = None
        self._writer: ResultWriter | None = None
        self._start: float | None = None
        self._frames = 0

    def start(self) -> None:
        with self._lock:
            self._text = io.StringIO()
            self._writer = ResultWriter(self._text, self.aus)
            self._start, self._frames = None, 0

    def write(self, faces, captured_ms: float) -> int | None:
        """Record one frame's faces; the rows so far (``None`` when not recording)."""
        with self._lock:
            if self._writer is None or self._writer.rows >= MAX_RECORDED_ROWS:
                return None if self._writer is None else self._writer.rows
            if self._start is None:
                self._start = captured_ms
            self._writer.write(FrameResult(self._frames, (captured_ms - self._start) / 1000.0, faces))
            self._frames += 1
            return self._writer.rows

    def stop(self) -> tuple[int, str]:
        """End the recording: its rows and CSV text."""
        with self._lock:
            if self._writer is None:
                return 0, ""
            rows, text = self._writer.rows, self._text.getvalue()
            self._writer, self._text = None, None
            return rows, text


class LiveSession:
    """One page's live view over ``websocket``.

    Args:
        websocket: the page's socket (not yet accepted).
        catalogue: the models; the page names one with ``?model=``.
        redetect_every: run the face detector at least every this many analysed frames.
    """

    def __init__(self, websocket: WebSocket, catalogue: ModelCatalogue, redetect_every: int = 30) -> None:
        self.ws = websocket
        self.catalogue = catalogue
        self.redetect_every = redetect_every
        self._latest: tuple[int, float, bytes] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._send_lock = asyncio.Lock()
        self.skipped = 0

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps(message))

    async def run(self) -> None:
        """Serve the page until it goes away; never raises for a client's doing."""
        await self.ws.accept()
        model_id = self.ws.query_params.get("model") or None
        try:
            shared = await asyncio.to_thread(self.catalogue.shared, model_id)
        except (KeyError, WeightsError, OSError) as err:
            await self._close_with(f"cannot load the model: {err.args[0] if err.args else err}")
            return
        self.shared = shared
        self.tracker = FaceTracker(shared.estimator.landmarker, redetect_every=self.redetect_every)
        self.recorder = Recorder(shared.estimator.aus)
        choice = self.catalogue.get(model_id)
        receiver = asyncio.create_task(self._receive())
        try:
            await self.send({"type": "ready", "model": choice.id, "card": choice.card,
                             "aus": au_info(shared.estimator.aus)})
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
        except _GONE as err:  # the page went away mid-stream
            log.info("live session closed: %s", type(err).__name__)
        finally:
            self._closed = True
            receiver.cancel()

    async def _close_with(self, message: str) -> None:
        try:
            await self.send({"type": "error", "message": message, "fatal": True})
            await self.ws.close(code=1011)
        except _GONE:
            pass

    async def _receive(self) -> None:
        """Read the page's messages: keep the newest frame, act on commands."""
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    self._take_frame(message["bytes"])
                elif message.get("text") is not None:
                    await self._command(message["text"])
        except _GONE:
            pass
        finally:
            self._closed = True
            self._wake.set()

    def _take_frame(self, data: bytes) -> None:
        if len(data) <= HEADER.size:
            return
        frame_id, captured = HEADER.unpack_from(data)
        if self._latest is not None:
            self.skipped += 1
        self._latest = (frame_id, captured, data[HEADER.size:])
        self._wake.set()

    async def _command(self, text: str) -> None:
        try:
            command = json.loads(text)
        except ValueError:
            await self.send({"type": "error",
                             "message": 'a text message must be JSON, e.g. {"type": "record", "on": true}'})
            return
        if command.get("type") == "record":
            if command.get("on"):
                self.recorder.start()
                await self.send({"type": "recording", "on": True, "rows": 0})
            else:
                rows, csv = self.recorder.stop()
                await self.send({"type": "recording", "on": False, "rows": rows, "csv": csv})
        else:
            await self.send({"type": "error", "message": f"unknown command {command.get('type')!r}"})

    def _analyse(self, frame_id: int, captured: float, data: bytes) -> dict[str, Any]:
        """One frame through tracker and network (in a worker thread)."""
        start = time.perf_counter()
        try:
            rgb = decode_image(data, f"frame {frame_id}")
        except ImageReadError:
            return {"type": "error", "id": frame_id, "captured": captured,
                    "message": f"frame {frame_id} could not be decoded as an image"}
        shared: SharedEstimator = self.shared
        with shared.lock:
            tracked = self.tracker.update(rgb)
            faces = shared.estimator.analyse(rgb, tracked)
        rows = self.recorder.write(faces, captured)
        crop = shared.estimator.codec.crop_size
        return {
            "type": "result", "id": frame_id, "captured": captured,
            "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
            "faces": [face_payload(f, crop) for f in faces],
            "message": None if faces else "no face in view: face the camera, in good light",
            "server_ms": round(1000 * (time.perf_counter() - start), 1),
            "skipped": self.skipped, "recorded_rows": rows,
        }
