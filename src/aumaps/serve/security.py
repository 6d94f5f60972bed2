"""Who may talk to ``aumaps serve``, and how uploads reach the disk.

* :class:`AccessGuard` (ASGI middleware, HTTP and WebSocket alike): on a loopback address
  no token is needed, but the ``Host`` header must name the loopback (no DNS rebinding);
  on any other address every request and WebSocket must carry the access token, as a
  ``?token=`` query, an ``Authorization: token …`` header, or the cookie the page receives
  when it is first opened with the token in its URL (as Jupyter does). Everywhere, a
  request whose ``Origin`` is another site is refused (no cross-site uploads or sockets).
* :class:`UploadFolder`: a private temporary folder (mode 0700) for uploads and job
  outputs, removed when the server stops.
* :func:`receive_upload`: streams a request body into that folder under a name of the
  server's choosing, refusing bodies over the size limit. The client's file name is kept
  only as a label (:func:`display_name`); no path from the client is ever opened.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import tempfile
import unicodedata
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "AccessGuard",
    "UploadFolder",
    "UploadTooLarge",
    "access_token",
    "cookie_name",
    "display_name",
    "is_loopback",
    "new_token",
    "receive_upload",
]

#: The hosts a loopback server answers to.
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def new_token() -> str:
    """A fresh access token (32 random bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def access_token(host: str, token: str | None) -> str | None:
    """The token a server on ``host`` requires: ``token`` if given, else a new one for any
    address other than a loopback one, else none."""
    if token is not None:
        if not token:
            raise ValueError("the access token may not be empty")
        return token
    return None if is_loopback(host) else new_token()


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookie_name(port: int | None) -> str:
    """The token cookie's name: one per port (cookies do not tell ports apart)."""
    return f"aumaps-token-{port or 0}"


def _hostname(value: str) -> str:
    """``host[:port]`` → host, lower case, without IPv6 brackets."""
    return (urlsplit(f"//{value}").hostname or "").lower()


class AccessGuard:
    """ASGI middleware that lets through only requests this server should answer.

    Args:
        app: the application behind it.
        token: the access token every request must carry, or ``None`` (loopback only).
    """

    def __init__(self, app, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        reason = self.refusal(scope)
        if reason is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            # close the handshake with 1008 (policy violation) and the reason
            await receive()
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        body = reason.encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope) -> str | None:
        """Why this request is refused, or ``None`` to let it through."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():  # "null" too
            return f"refused: a page from {origin} may not use this aumaps server"
        if self.token is None:
            if _hostname(host) not in _LOOPBACK_NAMES:
                return f"refused: this aumaps server answers to localhost / 127.0.0.1 only, not {host!r}"
            return None
        if secrets.compare_digest(self.offered_token(scope, headers), self.token):
            return None
        return ("refused: this aumaps server needs its access token; open the URL it printed "
                "(…?token=…) or send the header 'Authorization: token …'")

    @staticmethod
    def offered_token(scope, headers: dict[str, str]) -> str:
        """The token the request carries (query, header or cookie), or ``""``."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if query.get("token"):
            return query["token"][0]
        auth = headers.get("authorization", "")
        if auth.lower().startswith("token "):
            return auth[6:].strip()
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no token
            return ""
        port = (scope.get("server") or (None, None))[1]
        morsel = cookie.get(cookie_name(port))
        return morsel.value if morsel else ""


#: How much of a refused upload is still read (and thrown away) so the client sees the refusal.
DRAIN_BYTES = 16 * 1024 * 1024


class UploadTooLarge(ValueError):
    """An upload is over the size limit."""


class UploadFolder:
    """A private temporary folder (only this user can read it), removed by :meth:`remove`.

    Args:
        parent: where to create it (the system's temporary folder by default).
    """

    def __init__(self, parent: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="aumaps-serve-", dir=parent))
        os.chmod(self.path, 0o700)

    def new_path(self, kind: str = "upload") -> Path:
        """A fresh, unused file name inside the folder (the file is not created)."""
        return self.path / f"{kind}-{secrets.token_hex(8)}"

    def new_folder(self, name: str) -> Path:
        """A new subfolder ``name`` (a server-made name, never a client's)."""
        folder = self.path / name
        folder.mkdir(mode=0o700)
        return folder

    def remove(self) -> None:
        """Delete the folder and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)


async def receive_upload(request, dest: Path, limit: int) -> int:
    """Stream the body of ``request`` into the file ``dest``, at most ``limit`` bytes.

    Returns:
        The number of bytes written.

    Raises:
        UploadTooLarge: the body (or its announced length) is over ``limit``; nothing is
            left on disk.
        ValueError: the body is empty.
    """
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        if int(announced) - limit <= DRAIN_BYTES:
            await _drain(request)
        raise UploadTooLarge(_too_large(int(announced), limit))
    size = 0
    try:
        with open(dest, "xb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    break
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    if size > limit:
        dest.unlink(missing_ok=True)
        await _drain(request)
        raise UploadTooLarge(_too_large(size, limit, at_least=True))
    if size == 0:
        dest.unlink(missing_ok=True)
        raise ValueError("the upload is empty")
    return size


async def _drain(request) -> None:
    """Read and discard up to :data:`DRAIN_BYTES` more of the body, so that a client still
    sending receives the refusal instead of a reset connection."""
    left = DRAIN_BYTES
    try:
        async for chunk in request.stream():
            left -= len(chunk)
            if left <= 0:
                return
    except Exception:  # the client gave up: nothing to drain
        return


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    mb = 1024 * 1024
    return (f"the upload is {'over ' if at_least else ''}{size / mb:.3g} MB, more than this server accepts "
            f"({limit / mb:.3g} MB; start it with a larger --max-upload-mb)")


def display_name(name: str | None, fallback: str = "upload") -> str:
    """The client's file name reduced to a safe label: last path component, no control
    characters, at most 120 characters. It is shown and written to CSVs, never opened."""
    text = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
    return text[:120] or fallback
