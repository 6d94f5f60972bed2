"""Video jobs: ``POST /api/jobs?name=&model=`` (body: a video) → a background job; its
status, ``POST …/cancel``, its outputs (CSV, report, overlay video), ``DELETE`` (the job and
its files)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from ..errors import ApiError, Gone
from ..jobs import VideoJob, open_video
from ..security import display_name
from ..state import model_id, save_upload, server_state

__all__ = ["router"]

router = APIRouter(tags=["jobs"])

#: What a job offers for download.
OUTPUTS = ("csv", "report", "overlay")


def _job(request: Request, job_id: str) -> VideoJob:
    try:
        return server_state(request).jobs.get(job_id)
    except Gone:
        raise
    except KeyError as err:
        raise ApiError(404, err.args[0]) from None


@router.post("/api/jobs", status_code=202)
async def add_job(request: Request) -> dict:
    state = server_state(request)
    name = display_name(request.query_params.get("name"), "video")
    model = await model_id(state, request.query_params.get("model"))
    upload = await save_upload(request, state, "video")
    try:
        job = state.jobs.new(state.folder.new_folder(state.jobs.new_id()), name, model)
        upload.rename(job.upload)
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    try:
        (await asyncio.to_thread(open_video, job.upload, name, state.max_pixels)).close()
    except BaseException:
        job.upload.unlink(missing_ok=True)
        job.folder.rmdir()
        raise
    return state.jobs.submit(job).status(state.retention)


@router.get("/api/jobs/{job_id}")
async def job_status(request: Request, job_id: str) -> dict:
    return _job(request, job_id).status(server_state(request).retention)


@router.post("/api/jobs/{job_id}/cancel")
async def job_cancel(request: Request, job_id: str) -> dict:
    _job(request, job_id)
    state = server_state(request)
    return (await asyncio.to_thread(state.jobs.cancel, job_id)).status(state.retention)


@router.delete("/api/jobs/{job_id}")
async def job_delete(request: Request, job_id: str) -> dict:
    _job(request, job_id)
    await asyncio.to_thread(server_state(request).jobs.delete, job_id)
    return {"id": job_id, "deleted": True}


@router.get("/api/jobs/{job_id}/{kind}")
async def job_output(request: Request, job_id: str, kind: str) -> Response:
    job = _job(request, job_id)
    if kind not in OUTPUTS:
        raise ApiError(404, f"no output {kind!r}; a job has {', '.join(OUTPUTS[:-1])} and {OUTPUTS[-1]}")
    path = job.outputs.get(kind)
    if path is None or not path.is_file():
        raise ApiError(404, f"'{job.name}' has no {kind} (yet): the job is {job.state}")
    stem = Path(job.name).stem or "video"
    if kind == "report":
        headers = {
            "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
            "frame-ancestors 'self'",
            "X-Content-Type-Options": "nosniff",
        }
        return FileResponse(path, media_type="text/html", headers=headers)
    if kind == "csv":
        return FileResponse(path, media_type="text/csv", filename=f"{stem}.csv")
    return FileResponse(
        path, media_type="video/webm", filename=f"{stem}_overlay.webm", content_disposition_type="inline"
    )
