"""``GET /api/config``: the models on offer with their cards, the initial one, and the
server's limits (upload size, pixel cap, retention, recording cap) for the page to show."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from ... import __version__
from ...images import pixel_cap
from ..state import server_state

__all__ = ["router"]

router = APIRouter(tags=["models"])


@router.get("/api/config")
async def config(request: Request) -> dict:
    state = server_state(request)
    choices = await asyncio.to_thread(state.catalogue.choices)
    return {
        "version": __version__,
        "max_upload_bytes": state.max_upload_bytes,
        "max_pixels": state.max_pixels or pixel_cap(),
        "retention_seconds": state.retention,
        "max_recorded_rows": state.max_recorded_rows,
        "initial_model": state.catalogue.initial,
        "models": [c.public() for c in choices],
    }
