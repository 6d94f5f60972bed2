"""The web application: one page and the API behind it (:func:`create_app`).

=========================================  ====================================================
``GET /``                                  the page (``?token=`` sets the access cookie)
``POST /login``                            the token pasted into the page's login form
``GET /static/…``                          its script, styles (from the package; no CDN)
``GET /api/config``                        limits, models on offer, the initial one
``POST /api/photos?name=&model=``          body: an image → its faces (JSON)
``GET /api/photos/ID/image``               the photo as the page shows it (JPEG)
``GET /api/photos/ID/overlay/FACE``        overlay PNG of one face (as ``aumaps predict --maps``)
``GET /api/photos.csv?ids=A,B``            those photos' rows in the one CSV schema
``DELETE /api/photos/ID``                  forget a photo
``POST /api/jobs?name=&model=``            body: a video → a background job (JSON status)
``GET /api/jobs/ID``                       its progress and outputs
``POST /api/jobs/ID/cancel``               stop it (a queued job is cancelled at once)
``DELETE /api/jobs/ID``                    stop it and delete its files
``GET /api/jobs/ID/csv|report|overlay``    per-frame CSV, HTML report, overlay video (WebM)
``WS /ws/live?model=``                     the live webcam (:mod:`aumaps.serve.live`)
``GET /api/recordings/ID``                 a stopped live recording, as CSV; ``DELETE`` it
=========================================  ====================================================

The routes live in :mod:`aumaps.serve.routers`, one router per concern. Every request
passes the :class:`~aumaps.serve.security.AccessGuard` (token, host, origin). Uploads are raw
request bodies (the page sends the file as is), streamed into the private folder under
server-made names with the size limit enforced while reading. Every error is JSON
``{"error": message}`` with a 4xx/5xx status (:mod:`aumaps.serve.errors`), the message naming
the file or field and what to do. Finished jobs, photos and recordings are deleted after
``retention`` seconds.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .. import __version__
from .errors import ApiError, install_error_handlers
from .jobs import JobManager
from .live import MAX_RECORDED_ROWS, RecordingStore
from .models import ModelCatalogue
from .photos import PhotoAnalyser, PhotoStore
from .routers import ROUTERS
from .routers.security import STATIC
from .security import AccessGuard, UploadFolder, new_token
from .state import ServeState

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "DEFAULT_RETENTION", "ApiError", "create_app"]

log = logging.getLogger(__name__)

#: The upload size limit unless told otherwise.
DEFAULT_MAX_UPLOAD_MB = 500
#: How long finished jobs, photos and recordings are kept unless told otherwise (seconds).
DEFAULT_RETENTION = 24 * 3600.0


def create_app(
    weights: str | Path = "default",
    models: str | Path | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    token: str | None = None,
    backend: str = "auto",
    workers: int = 2,
    preload: bool = True,
    upload_dir: str | Path | None = None,
    *,
    no_token: bool = False,
    local_only: bool = True,
    device: str = "cpu",
    max_pixels: int | None = None,
    retention: float | None = DEFAULT_RETENTION,
    max_recorded_rows: int = MAX_RECORDED_ROWS,
    photo_workers: int = 1,
) -> FastAPI:
    """The ``aumaps serve`` application.

    Args:
        weights: the model selected when the page opens (registry name or checkpoint path).
        models: a folder of checkpoints to offer in the picker.
        max_upload_mb: the largest upload accepted, in MB.
        token: the access token every request must carry; ``None``: a new one
            (``app.state.token`` holds it), unless ``no_token``.
        backend: the inference engine (see :class:`~aumaps.estimator.Estimator`).
        workers: video jobs analysed at once.
        preload: load the initial model when the server starts, not on the first request.
        upload_dir: where the private upload folder is made (the system's temporary folder).
        no_token: require no token (``local_only`` servers only: any user of this machine
            can then use the server).
        local_only: the server listens on the loopback: requests must name it in ``Host``.
        device: the torch device the networks run on.
        max_pixels: the largest image or frame decoded, in pixels (``None``: the cap in
            force, :func:`aumaps.images.pixel_cap`).
        retention: seconds finished jobs, photos and recordings are kept (``None``: until
            the server stops).
        max_recorded_rows: the cap of a live recording.
        photo_workers: photos analysed at once.

    Raises:
        FileNotFoundError: ``weights`` or ``models`` names nothing usable.
        ValueError: ``max_upload_mb``, ``retention`` or ``max_pixels`` is not positive,
            ``no_token`` on a server that is not ``local_only``, or an unusable token.
    """
    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    if retention is not None and retention <= 0:
        raise ValueError(f"retention must be positive (or None: until the server stops), got {retention}")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if no_token and not local_only:
        raise ValueError("only a server on the loopback (127.0.0.1) may run without an access token")
    token = None if no_token else (token if token is not None else new_token())
    catalogue = ModelCatalogue(weights, models, backend, device)
    folder = UploadFolder(upload_dir)
    atexit.register(folder.remove)  # also when the server dies without shutting down
    state = ServeState(
        catalogue=catalogue,
        folder=folder,
        jobs=JobManager(catalogue, workers, max_pixels),
        photos=PhotoStore(),
        analyser=PhotoAnalyser(catalogue, photo_workers, max_pixels),
        recordings=RecordingStore(folder),
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels,
        retention=retention,
        max_recorded_rows=int(max_recorded_rows),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if preload:
            asyncio.get_running_loop().run_in_executor(None, _preload, catalogue)
        sweeper = asyncio.create_task(_sweep(state)) if retention is not None else None
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await asyncio.to_thread(state.shutdown)
            folder.remove()
            for action in app.state.on_stop:  # e.g. serve()'s redirect file
                action()

    app = FastAPI(
        title="aumaps", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.aumaps, app.state.token = state, token
    app.state.on_stop = []  # callables run when the server stops (after its folder is removed)
    # the state's parts, under the names earlier versions used
    app.state.catalogue, app.state.jobs, app.state.photos, app.state.folder = (
        catalogue,
        state.jobs,
        state.photos,
        folder,
    )
    app.add_middleware(AccessGuard, token=token, local_only=local_only)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app


async def _sweep(state: ServeState) -> None:
    """Delete what outlived the retention, checking every few seconds (a minute at most)."""
    period = min(60.0, max(0.5, state.retention / 10))
    while True:
        await asyncio.sleep(period)
        try:
            await asyncio.to_thread(state.expire)
        except Exception:  # the next round tries again
            log.exception("could not delete expired results")


def _preload(catalogue: ModelCatalogue) -> None:
    """Load the initial model in the background, so the first request does not wait for it."""
    try:
        catalogue.shared(None)
    except Exception as err:  # the page reports it when the model is asked for
        log.warning("could not load the model %r: %s", catalogue.initial, err)
