"""Photos: ``POST /api/photos?name=&model=`` (body: an image) → its faces; its display image,
overlay PNGs and CSV rows; ``DELETE /api/photos/ID`` forgets it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...weights import WeightsError
from ..errors import ApiError, Gone
from ..photos import Photo, photos_csv
from ..security import display_name
from ..state import model_id, save_upload, server_state

__all__ = ["attachment", "router"]

router = APIRouter(tags=["photos"])


def attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f"attachment; filename*=utf-8''{quote(filename)}"}


def _photo(request: Request, photo_id: str) -> Photo:
    try:
        return server_state(request).photos.get(photo_id)
    except Gone:
        raise
    except KeyError as err:
        raise ApiError(404, err.args[0]) from None


@router.post("/api/photos")
async def add_photo(request: Request) -> dict:
    state = server_state(request)
    name = display_name(request.query_params.get("name"), "photo")
    model = await model_id(state, request.query_params.get("model"))
    upload = await save_upload(request, state, "photo")
    try:
        photo, crop_size = await state.analyser.analyse(upload, name, model)
    except WeightsError as err:
        raise ApiError(400, f"model {model!r} cannot be loaded: {err}; choose another model") from None
    finally:
        upload.unlink(missing_ok=True)
    state.photos.add(photo)
    return photo.summary(crop_size)


@router.get("/api/photos/{photo_id}/image")
async def photo_image(request: Request, photo_id: str) -> Response:
    return Response(_photo(request, photo_id).display, media_type="image/jpeg")


@router.get("/api/photos/{photo_id}/overlay/{face_id}")
async def photo_overlay(request: Request, photo_id: str, face_id: int) -> Response:
    photo = _photo(request, photo_id)
    try:
        png = await asyncio.to_thread(photo.overlay_png, face_id)
    except KeyError as err:
        raise ApiError(404, err.args[0]) from None
    filename = f"{Path(photo.name).stem or 'photo'}_face{face_id}.png"
    return Response(png, media_type="image/png", headers=attachment(filename))


@router.get("/api/photos.csv")
async def photo_table(request: Request, ids: str = "") -> Response:
    chosen = [_photo(request, i) for i in ids.split(",") if i]
    try:
        text = await asyncio.to_thread(photos_csv, chosen)
    except ValueError as err:
        raise ApiError(400, f"ids: {err}") from None
    return Response(text, media_type="text/csv", headers=attachment("aumaps-photos.csv"))


@router.delete("/api/photos/{photo_id}")
async def delete_photo(request: Request, photo_id: str) -> dict:
    _photo(request, photo_id)
    server_state(request).photos.delete(photo_id)
    return {"id": photo_id, "deleted": True}
