"""The page, and the access token exchanged for a cookie.

``GET /?token=…`` (the address ``aumaps serve`` prints, and its redirect file opens): the
access guard has checked the token; the answer sets the access cookie (a digest of the
token, HttpOnly, SameSite=Lax, Secure over HTTPS) and redirects to the same address without
the token, so it leaves the address bar and the history. ``POST /login``: the form of the
page a browser without the token sees (:func:`aumaps.serve.security.login_page`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..security import cookie_name, cookie_value, login_page, token_matches

__all__ = ["STATIC", "page_headers", "router"]

router = APIRouter(tags=["security"])

#: The page's files (HTML, scripts, styles), served from the package.
STATIC = Path(str(resources.files("aumaps.serve") / "static"))
#: The largest login form read.
_LOGIN_BYTES = 4096


def page_headers(request: Request) -> dict[str, str]:
    host = request.headers.get("host", "")
    return {
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
            f"connect-src 'self' ws://{host} wss://{host}; frame-src 'self'; frame-ancestors 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def _with_cookie(request: Request, response: Response, token: str) -> Response:
    port = (request.scope.get("server") or (None, None))[1]  # as the guard reads it
    response.set_cookie(
        cookie_name(port),
        cookie_value(token),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme in ("https", "wss"),
        path="/",
    )
    return response


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    token = request.app.state.token
    if token is not None and "token" in request.query_params:  # the guard accepted it
        rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        return _with_cookie(request, RedirectResponse("/" + (f"?{rest}" if rest else ""), status_code=303), token)
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"), headers=page_headers(request))


@router.get("/login", include_in_schema=False)
async def login_again(request: Request) -> Response:
    """The login form's address reloaded with the cookie in place: the page."""
    return RedirectResponse("/", status_code=303)


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    token = request.app.state.token
    if token is None:
        return RedirectResponse("/", status_code=303)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _LOGIN_BYTES:
            break
    offered = parse_qs(body[:_LOGIN_BYTES].decode("latin-1")).get("token", [""])[0].strip()
    if token_matches(offered.encode("latin-1", "replace"), token):
        return _with_cookie(request, RedirectResponse("/", status_code=303), token)
    status, headers, page = login_page("That is not this server's access token.", 403)
    return Response(
        page, status_code=status, headers={k.decode(): v.decode() for k, v in headers if k != b"content-length"}
    )
