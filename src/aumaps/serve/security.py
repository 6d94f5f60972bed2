"""Who may talk to ``aumaps serve``, and how uploads reach the disk (Jupyter's security model).

* **A token always**, on the loopback too (any local user of a shared machine could
  otherwise use the server): :func:`server_token` takes it from ``--token-file``, else
  ``$AUMAPS_TOKEN``, else makes a new one; never from the command line, where every user
  sees it (``ps``). Only a loopback server may run without one (``--no-token``, with a
  warning).
* :class:`AccessGuard` (ASGI middleware, HTTP and WebSocket alike): every request must
  carry the token, as a ``?token=`` query (the address the server prints), an
  ``Authorization: token …`` header, or the cookie the page receives after its first
  authenticated visit (a keyed digest of the token, not the token). Tokens are compared as
  bytes in constant time; a request without one is answered 401, a wrong one 403, as JSON
  (``{"error": …}``), or for the page itself with a form to paste the token into. A loopback
  server also checks that the ``Host`` header names the loopback (no DNS rebinding), and a
  request whose ``Origin`` is another site is refused everywhere (no cross-site uploads or
  sockets).
* :func:`write_open_file`: the browser is opened on a local file (mode 0600, in a private
  folder) that redirects to the address with the token, as Jupyter's ``jupyter_server``
  does, so the token never appears on the browser's command line.
* :class:`UploadFolder`: a private temporary folder (mode 0700) for uploads and job
  outputs, removed when the server stops. :func:`receive_upload` streams a request body
  into it under a name of the server's choosing, refusing bodies over the size limit. The
  client's file name is kept only as a label (:func:`display_name`); no path from the
  client is ever opened.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import os
import secrets
import shutil
import stat
import string
import tempfile
import unicodedata
from http.cookies import SimpleCookie
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote_to_bytes, urlsplit

__all__ = [
    "TOKEN_ENV",
    "AccessGuard",
    "UploadFolder",
    "UploadTooLarge",
    "cookie_name",
    "cookie_value",
    "display_name",
    "is_loopback",
    "login_page",
    "new_token",
    "receive_upload",
    "runtime_dir",
    "server_token",
    "token_matches",
    "validate_token",
    "write_open_file",
]

#: The environment variable a token may come from (never the command line).
TOKEN_ENV = "AUMAPS_TOKEN"
#: The hosts a loopback server answers to.
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
#: Characters a token may hold: it travels in addresses, headers and cookies as is.
_TOKEN_CHARACTERS = set(string.ascii_letters + string.digits + string.punctuation) - set("\"';,\\")


def new_token() -> str:
    """A fresh access token (32 random bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def validate_token(token: str, origin: str = "the access token") -> str:
    """``token`` if it can be used (non-empty, printable ASCII without spaces, quotes, ``;``,
    ``,`` or ``\\``: it travels in addresses and headers as is).

    Raises:
        ValueError: it cannot; the message names ``origin``.
    """
    if not token:
        raise ValueError(f"{origin} is empty")
    bad = sorted({ch for ch in token if ch not in _TOKEN_CHARACTERS})
    if bad:
        raise ValueError(
            f"{origin} may hold only printable ASCII letters, digits and punctuation "
            f"(no spaces, quotes, ';', ',' or '\\'); it holds {''.join(bad)!r}"
        )
    return token


def server_token(
    token_file: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> tuple[str, str, list[str]]:
    """The token a server requires, where it came from, and warnings about it.

    From ``token_file`` (its first line; a file other users may read is warned about), else
    from ``$AUMAPS_TOKEN``, else a new one (:func:`new_token`).

    Raises:
        ValueError: the file or variable is empty or holds characters a token may not.
        OSError: the file cannot be read.
    """
    environ = os.environ if environ is None else environ
    warnings: list[str] = []
    if token_file is not None:
        path = Path(token_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise OSError(f"--token-file: cannot read '{path}': {err.strerror or err}") from None
        if path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
            warnings.append(f"'{path}' can be read by other users: `chmod 600 {path}` keeps the token yours")
        token, origin = (text.splitlines() or [""])[0].strip(), f"--token-file '{path}'"
    elif environ.get(TOKEN_ENV) is not None:
        token, origin = environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    else:
        return new_token(), "generated", warnings
    validate_token(token, origin)
    if len(token) < 16:
        warnings.append(
            f"the token from {origin} is short ({len(token)} characters): a guessable token protects "
            "little; leave it out and aumaps makes a random one"
        )
    return token, origin, warnings


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookie_name(port: int | None) -> str:
    """The access cookie's name: one per port (cookies do not tell ports apart)."""
    return f"aumaps-token-{port or 0}"


def cookie_value(token: str) -> str:
    """What the access cookie holds: a keyed digest of the token (the token cannot be read
    back from a browser's cookie store, and a cookie dies with the server's token)."""
    return hmac.new(token.encode(), b"aumaps serve access cookie", hashlib.sha256).hexdigest()


def token_matches(offered: bytes, token: str) -> bool:
    """Constant-time comparison of an offered token (raw bytes, any content) with ``token``.

    Bytes, not text: ``secrets.compare_digest`` refuses non-ASCII ``str`` with a TypeError
    (a 500 for ``?token=été``); on bytes it simply says no."""
    return hmac.compare_digest(offered, token.encode())


def _hostname(value: str) -> str:
    """``host[:port]`` → host, lower case, without IPv6 brackets."""
    try:
        return (urlsplit(f"//{value}").hostname or "").lower()
    except ValueError:  # a malformed Host header names no host
        return ""


def _query_value(query: bytes, key: bytes) -> bytes | None:
    """The first value of ``key`` in a raw query string, percent-decoded to bytes."""
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_to_bytes(name.replace(b"+", b" ")) == key:
            return unquote_to_bytes(value.replace(b"+", b" "))
    return None


def login_page(message: str, status: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The page shown to a browser without the token: why, and a form to paste it into
    (posted to ``/login``, which sets the cookie), as Jupyter's login page does."""
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>aumaps: access token needed</title>
<style>body{{font:16px system-ui,sans-serif;max-width:40em;margin:4em auto;color:#1f2328}}
input{{font:inherit;width:24em}}code{{background:#f3f4f6;padding:0 .2em}}</style></head>
<body><h1>aumaps: access token needed</h1>
<p>{html.escape(message)}</p>
<p>Open the address <code>aumaps serve</code> printed when it started (it ends in <code>?token=…</code>),
or paste the token here:</p>
<form method="post" action="/login"><input name="token" type="password" autocomplete="off" autofocus>
<button type="submit">Open</button></form></body></html>""".encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (
            b"content-security-policy",
            b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ]
    return status, headers, body


class AccessGuard:
    """ASGI middleware that lets through only requests this server should answer.

    Args:
        app: the application behind it.
        token: the access token every request must carry; ``None``: none (``local_only``
            servers only, see :func:`aumaps.serve.serve`'s ``no_token``).
        local_only: the server listens on the loopback: the ``Host`` header must name it.

    Raises:
        ValueError: no token on a server that is not ``local_only``.
    """

    #: Paths answered without the token: the login form's target.
    OPEN_PATHS: ClassVar[frozenset[tuple[str, str]]] = frozenset({("POST", "/login")})

    def __init__(self, app, token: str | None, local_only: bool = True) -> None:
        if token is None and not local_only:
            raise ValueError("a server reachable from other machines needs an access token")
        self.app = app
        self.token = None if token is None else validate_token(token)
        self.local_only = local_only

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self.refusal(scope)
        if refusal is None:
            return await self.app(scope, receive, send)
        status, reason = refusal
        if scope["type"] == "websocket":
            # refuse the handshake: 1008 (policy violation) with the reason
            await receive()
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        if scope.get("method") == "GET" and scope.get("path") in ("/", "/login"):  # a browser: the form
            status, headers, body = login_page(reason, status)
        else:
            body = json.dumps({"error": reason}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"token"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope) -> tuple[int, str] | None:
        """``(status, why)`` this request is refused, or ``None`` to let it through."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():  # "null" too
            return 403, f"refused: a page from {origin} may not use this aumaps server"
        if self.local_only and _hostname(host) not in _LOOPBACK_NAMES:
            return 403, f"refused: this aumaps server answers to localhost / 127.0.0.1 only, not {host!r}"
        if self.token is None or (scope.get("method"), scope.get("path")) in self.OPEN_PATHS:
            return None
        offered = self.offered(scope, headers)
        if offered is None:
            return 401, (
                "this aumaps server needs its access token: open the address it printed when it started "
                "(…/?token=…), or send the header 'Authorization: token …'"
            )
        kind, value = offered
        if token_matches(value, cookie_value(self.token) if kind == "cookie" else self.token):
            return None
        return 403, (
            "the access token is wrong: open the address this aumaps server printed when it started "
            "(…/?token=…); a restarted server has a new token unless AUMAPS_TOKEN or --token-file sets it"
        )

    @staticmethod
    def offered(scope, headers: dict[str, str]) -> tuple[str, bytes] | None:
        """What the request carries: ``("query" | "header", token bytes)`` or ``("cookie",
        digest bytes)``; ``None`` when it carries nothing."""
        query = _query_value(scope.get("query_string", b""), b"token")
        if query is not None:
            return "query", query
        auth = headers.get("authorization", "")
        if auth[:6].lower() == "token ":
            return "header", auth[6:].strip().encode("latin-1")
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no token
            return None
        morsel = cookie.get(cookie_name((scope.get("server") or (None, None))[1]))
        return None if morsel is None else ("cookie", morsel.value.encode("latin-1", "replace"))


def runtime_dir() -> Path:
    """A private folder (0700) for files only this user may read: ``$XDG_RUNTIME_DIR/aumaps``
    where the system provides one, else ``~/.local/share/aumaps/runtime`` (as Jupyter's)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "aumaps" if base and Path(base).is_dir() else Path.home() / ".local/share/aumaps/runtime"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def write_open_file(url: str, folder: str | os.PathLike[str] | None = None) -> Path:
    """Write the local page that sends a browser to ``url`` (which holds the token), readable
    by this user only (0600), and return its path: the browser is started on this file, so
    the token never appears on a command line other users can read (``ps``)."""
    folder = Path(folder) if folder is not None else runtime_dir()
    path = folder / f"aumaps-serve-{os.getpid()}-open.html"
    target = html.escape(url, quote=True)
    page = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={target}">'
        f"<title>aumaps serve</title></head>\n<body><p>This page opens aumaps serve. If it does not, "
        f'<a href="{target}">open aumaps serve here</a>.</p></body></html>\n'
    )
    path.unlink(missing_ok=True)  # never write through someone's link
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(page)
    return path


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
    return (
        f"the upload is {'over ' if at_least else ''}{size / mb:.3g} MB, more than this server accepts "
        f"({limit / mb:.3g} MB; start it with a larger --max-upload-mb)"
    )


def display_name(name: str | None, fallback: str = "upload") -> str:
    """The client's file name reduced to a safe label: last path component, no control
    characters, at most 120 characters. It is shown and written to CSVs, never opened."""
    text = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
    return text[:120] or fallback
