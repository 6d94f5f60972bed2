"""Every error is the API's own: JSON ``{"error": message}`` with a status that says whose
doing it is, and a message that says what to do.

:func:`install_error_handlers` maps the exception classes that the readers, the models and
the engines raise to statuses (:data:`STATUSES`), FastAPI's own errors (unknown address,
wrong method, a malformed parameter) to the same JSON, and anything else to a 500 whose
message names the exception and points to the server's log (where its traceback goes).
Routes raise :class:`ApiError` for refusals of their own.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..images import ImageReadError, ImageTooLarge
from ..runtime import EngineUnavailable
from ..video import VideoOpenError
from ..weights import WeightsError
from .security import UploadTooLarge

__all__ = ["STATUSES", "ApiError", "Gone", "Graveyard", "error_response", "install_error_handlers", "status_of"]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the server refuses, with the status and the message the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Gone(KeyError):
    """A photo, job or recording that was here and is not any more (deleted, or expired)."""


class Graveyard:
    """What was deleted or expired, and why, so a late request hears 410 and the reason
    rather than a bare "not found" (bounded: the oldest entries are forgotten)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._why: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def bury(self, key: str, why: str) -> None:
        with self._lock:
            self._why[key] = why
            while len(self._why) > self.size:
                self._why.popitem(last=False)

    def check(self, key: str, what: str) -> None:
        """Raises Gone (with the reason) if ``key`` was deleted or expired."""
        with self._lock:
            why = self._why.get(key)
        if why is not None:
            raise Gone(f"{what} {key!r} is gone: {why}")


#: Exception class -> (status, how the message is made, what to do), most specific first.
STATUSES: list[tuple[type[BaseException], int, str]] = [
    (ImageTooLarge, 413, ""),
    (UploadTooLarge, 413, ""),
    (ImageReadError, 415, ""),
    (VideoOpenError, 415, ""),
    (WeightsError, 400, "choose another model in the picker, or fix the checkpoint file"),
    (
        EngineUnavailable,
        503,
        "start the server with --backend torch (PyTorch float32, always available), or install what the message names",
    ),
    (MemoryError, 507, "the server ran out of memory: try a smaller file, or a lower --max-pixels"),
    (Gone, 410, ""),
    (FileNotFoundError, 404, "the file is gone from the server (deleted, or expired: see --retention)"),
    (OSError, 500, "the server could not read or write its files (disk full? the upload folder removed?)"),
]


def status_of(err: BaseException) -> tuple[int, str]:
    """The status and the message a client gets for ``err``."""
    if isinstance(err, ApiError):
        return err.status, err.message
    for kind, status, advice in STATUSES:
        if isinstance(err, kind):
            text = (
                err.strerror
                if isinstance(err, OSError) and err.strerror
                else err.args[0]
                if isinstance(err, KeyError) and err.args
                else str(err)
            ) or type(err).__name__
            return status, f"{text}: {advice}" if advice else text
    return 500, (
        f"internal error in aumaps ({type(err).__name__}: {err}); the server's log has the details. "
        "Please report it with the log"
    )


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as JSON (see the module's description)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 404:
            message = f"no such address on this aumaps server: {request.url.path}"
        elif err.status_code == 405:
            message = f"{request.method} is not how {request.url.path} is used"
        else:
            message = str(err.detail)
        return error_response(err.status_code, message, getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}" for e in err.errors()
        )
        return error_response(422, problems or "the request is malformed")

    for kind, _, _ in STATUSES:

        async def _known(request: Request, err: Exception) -> JSONResponse:
            status, message = status_of(err)
            if status >= 500:
                log.error("%s %s: %s", request.method, request.url.path, message)
            return error_response(status, message)

        app.add_exception_handler(kind, _known)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return error_response(*status_of(err))
