"""The live view: ``WS /ws/live?model=`` (:class:`aumaps.serve.live.LiveSession`), and the
recordings it makes: ``GET /api/recordings/ID`` downloads one as CSV, ``DELETE`` removes it."""

from __future__ import annotations

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import FileResponse

from ..errors import ApiError, Gone
from ..live import LiveSession, Recording
from ..state import server_state

__all__ = ["router"]

router = APIRouter(tags=["live"])


@router.websocket("/ws/live")
async def live(websocket: WebSocket) -> None:
    state = server_state(websocket)
    await LiveSession(
        websocket, state.catalogue, state.recordings, max_pixels=state.max_pixels, max_rows=state.max_recorded_rows
    ).run()


def _recording(request: Request, recording_id: str) -> Recording:
    try:
        return server_state(request).recordings.get(recording_id)
    except Gone:
        raise
    except KeyError as err:
        raise ApiError(404, err.args[0]) from None


@router.get("/api/recordings/{recording_id}")
async def recording_csv(request: Request, recording_id: str) -> FileResponse:
    recording = _recording(request, recording_id)
    return FileResponse(recording.path, media_type="text/csv", filename=recording.filename)


@router.delete("/api/recordings/{recording_id}")
async def recording_delete(request: Request, recording_id: str) -> dict:
    _recording(request, recording_id)
    server_state(request).recordings.delete(recording_id)
    return {"id": recording_id, "deleted": True}
