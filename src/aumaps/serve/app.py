"""The web application: one page and the API behind it (:func:`create_app`).

=========================================  ====================================================
``GET /``                                  the page (``?token=`` sets the access cookie)
``GET /static/…``                          its script, styles (from the package; no CDN)
``GET /api/config``                        upload limit, models on offer, the initial one
``POST /api/photos?name=&model=``          body: an image → its faces (JSON)
``GET /api/photos/ID/image``               the photo as the page shows it (JPEG)
``GET /api/photos/ID/overlay/FACE``        overlay PNG of one face (as ``aumaps predict --maps``)
``GET /api/photos.csv?ids=A,B``            those photos' rows in the one CSV schema
``POST /api/jobs?name=&model=``            body: a video → a background job (JSON status)
``GET /api/jobs/ID``                       its progress and outputs; ``DELETE`` cancels it
``GET /api/jobs/ID/csv|report|overlay``    per-frame CSV, HTML report, overlay video (WebM)
``WS /ws/live?model=``                     the live webcam (:mod:`aumaps.serve.live`)
=========================================  ====================================================

Uploads are raw request bodies (the page sends the file as is), streamed into the private
folder under server-made names with the size limit enforced while reading. Every error is
JSON ``{"error": message}`` with a 4xx status, the message naming the file or field.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..images import ImageReadError
from ..video import VideoOpenError
from ..weights import WeightsError
from .jobs import JobManager, open_video
from .live import LiveSession
from .models import ModelCatalogue
from .photos import PhotoStore, analyse_photo, photos_csv
from .security import AccessGuard, UploadFolder, UploadTooLarge, cookie_name, display_name, receive_upload

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "create_app"]

log = logging.getLogger(__name__)

#: The upload size limit unless told otherwise.
DEFAULT_MAX_UPLOAD_MB = 500

_STATIC = Path(str(resources.files(__package__) / "static"))


class ApiError(Exception):
    """A request the server refuses, with the status and the message the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _page_headers(request: Request) -> dict[str, str]:
    host = request.headers.get("host", "")
    return {
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
            f"connect-src 'self' ws://{host} wss://{host}; frame-src 'self'; frame-ancestors 'self'; "
            "object-src 'none'; base-uri 'none'"),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def create_app(
    weights: str | Path = "default",
    models: str | Path | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    token: str | None = None,
    backend: str = "auto",
    workers: int = 2,
    preload: bool = True,
    upload_dir: str | Path | None = None,
) -> FastAPI:
    """The ``aumaps serve`` application.

    Args:
        weights: the model selected when the page opens (registry name or checkpoint path).
        models: a folder of checkpoints to offer in the picker.
        max_upload_mb: the largest upload accepted, in MB.
        token: the access token every request must carry; ``None``: none (loopback only —
            :func:`aumaps.serve.serve` makes one for any other address).
        backend: the inference engine (see :class:`~aumaps.estimator.Estimator`).
        workers: video jobs analysed at once.
        preload: load the initial model when the server starts, not on the first request.
        upload_dir: where the private upload folder is made (the system's temporary folder).

    Raises:
        FileNotFoundError: ``weights`` or ``models`` names nothing usable.
        ValueError: ``max_upload_mb`` is not positive.
    """
    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    limit = int(max_upload_mb * 1024 * 1024)
    catalogue = ModelCatalogue(weights, models, backend)
    folder = UploadFolder(upload_dir)
    atexit.register(folder.remove)  # also when the server dies without shutting down
    jobs = JobManager(catalogue, workers)
    photos = PhotoStore()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if preload:
            asyncio.get_running_loop().run_in_executor(None, _preload, catalogue)
        try:
            yield
        finally:
            await asyncio.to_thread(jobs.shutdown)
            folder.remove()

    app = FastAPI(title="aumaps", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.catalogue, app.state.jobs, app.state.photos, app.state.folder = catalogue, jobs, photos, folder
    app.add_middleware(AccessGuard, token=token)
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status)

    def _model(model_id: str | None) -> str:
        try:
            return catalogue.get(model_id).id
        except KeyError as err:
            raise ApiError(400, f"model: {err.args[0]}") from None

    async def _upload(request: Request, kind: str) -> Path:
        dest = folder.new_path(kind)
        try:
            await receive_upload(request, dest, limit)
        except UploadTooLarge as err:
            raise ApiError(413, f"'{display_name(request.query_params.get('name'))}': {err}") from None
        except ValueError as err:
            raise ApiError(400, f"'{display_name(request.query_params.get('name'))}': {err}") from None
        return dest

    # -- the page ---------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        offered = request.query_params.get("token")
        if offered is not None:  # the guard accepted it: keep it in a cookie, out of the address bar
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response = RedirectResponse("/" + (f"?{rest}" if rest else ""), status_code=303)
            port = (request.scope.get("server") or (None, None))[1]  # as the guard reads it
            response.set_cookie(cookie_name(port), offered, httponly=True, samesite="strict")
            return response
        return HTMLResponse((_STATIC / "index.html").read_text(encoding="utf-8"), headers=_page_headers(request))

    @app.get("/api/config")
    async def config() -> dict:
        choices = await asyncio.to_thread(catalogue.choices)
        return {"version": __version__, "max_upload_bytes": limit, "initial_model": catalogue.initial,
                "models": [c.public() for c in choices]}

    # -- photos -----------------------------------------------------------------------------
    @app.post("/api/photos")
    async def add_photo(request: Request) -> dict:
        name = display_name(request.query_params.get("name"), "photo")
        model_id = _model(request.query_params.get("model"))
        upload = await _upload(request, "photo")
        try:
            shared = await asyncio.to_thread(catalogue.shared, model_id)
            photo = await asyncio.to_thread(analyse_photo, upload, name, model_id, shared)
        except ImageReadError as err:
            raise ApiError(415, str(err)) from None
        except WeightsError as err:
            raise ApiError(400, f"model {model_id!r}: {err}") from None
        finally:
            upload.unlink(missing_ok=True)
        photos.add(photo)
        return photo.summary(shared.estimator.codec.crop_size)

    def _photo(photo_id: str):
        try:
            return photos.get(photo_id)
        except KeyError as err:
            raise ApiError(404, err.args[0]) from None

    @app.get("/api/photos/{photo_id}/image")
    async def photo_image(photo_id: str) -> Response:
        return Response(_photo(photo_id).display, media_type="image/jpeg")

    @app.get("/api/photos/{photo_id}/overlay/{face_id}")
    async def photo_overlay(photo_id: str, face_id: int) -> Response:
        photo = _photo(photo_id)
        try:
            png = await asyncio.to_thread(photo.overlay_png, face_id)
        except KeyError as err:
            raise ApiError(404, err.args[0]) from None
        filename = f"{Path(photo.name).stem or 'photo'}_face{face_id}.png"
        return Response(png, media_type="image/png", headers=_attachment(filename))

    @app.get("/api/photos.csv")
    async def photo_table(ids: str = "") -> Response:
        chosen = [_photo(i) for i in ids.split(",") if i]
        try:
            text = photos_csv(chosen)
        except ValueError as err:
            raise ApiError(400, f"ids: {err}") from None
        return Response(text, media_type="text/csv", headers=_attachment("aumaps-photos.csv"))

    # -- videos -----------------------------------------------------------------------------
    @app.post("/api/jobs", status_code=202)
    async def add_job(request: Request) -> dict:
        name = display_name(request.query_params.get("name"), "video")
        model_id = _model(request.query_params.get("model"))
        upload = await _upload(request, "video")
        job = jobs.new(folder.new_folder(jobs.new_id()), name, model_id)
        upload.rename(job.upload)
        try:
            (await asyncio.to_thread(open_video, job.upload, name)).close()
        except VideoOpenError as err:
            job.upload.unlink(missing_ok=True)
            raise ApiError(415, str(err)) from None
        return jobs.submit(job).status()

    def _job(job_id: str):
        try:
            return jobs.get(job_id)
        except KeyError as err:
            raise ApiError(404, err.args[0]) from None

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str) -> dict:
        return _job(job_id).status()

    @app.delete("/api/jobs/{job_id}")
    async def job_cancel(job_id: str) -> dict:
        _job(job_id)
        return jobs.cancel(job_id).status()

    @app.get("/api/jobs/{job_id}/{kind}")
    async def job_output(request: Request, job_id: str, kind: str) -> Response:
        job = _job(job_id)
        if kind not in ("csv", "report", "overlay"):
            raise ApiError(404, f"no output {kind!r}; a job has csv, report and overlay")
        if kind not in job.outputs:
            raise ApiError(404, f"'{job.name}' has no {kind} (yet): the job is {job.state}")
        stem = Path(job.name).stem or "video"
        if kind == "report":
            headers = {"Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                                                  "frame-ancestors 'self'", "X-Content-Type-Options": "nosniff"}
            return FileResponse(job.outputs["report"], media_type="text/html", headers=headers)
        if kind == "csv":
            return FileResponse(job.outputs["csv"], media_type="text/csv", filename=f"{stem}.csv")
        return FileResponse(job.outputs["overlay"], media_type="video/webm", filename=f"{stem}_overlay.webm",
                            content_disposition_type="inline")

    # -- live -------------------------------------------------------------------------------
    @app.websocket("/ws/live")
    async def live(websocket: WebSocket) -> None:
        await LiveSession(websocket, catalogue).run()

    return app


def _attachment(filename: str) -> dict[str, str]:
    from urllib.parse import quote

    return {"Content-Disposition": f"attachment; filename*=utf-8''{quote(filename)}"}


def _preload(catalogue: ModelCatalogue) -> None:
    """Load the initial model in the background, so the first request does not wait for it."""
    try:
        catalogue.shared(None)
    except Exception as err:  # the page reports it when the model is asked for
        log.warning("could not load the model %r: %s", catalogue.initial, err)
