"""Starting the server: :func:`serve` binds, prints the address to open, and runs uvicorn."""

from __future__ import annotations

import socket
import sys
import threading
import webbrowser
from pathlib import Path

from .app import DEFAULT_MAX_UPLOAD_MB, create_app
from .security import access_token

__all__ = ["serve", "server_url"]


def server_url(host: str, port: int, token: str | None) -> str:
    """The address to open: ``http://HOST:PORT/`` with ``?token=…`` when one is needed."""
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = socket.gethostname()
    elif ":" in host:
        shown = f"[{host}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {err.strerror or err} (another server on that port? "
                      "choose one with --port)") from None
    sock.listen(128)
    return sock


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    weights: str = "default",
    models: str | Path | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    token: str | None = None,
    open_browser: bool = False,
    backend: str = "auto",
    workers: int = 2,
) -> None:
    """Run ``aumaps serve`` until Ctrl-C; see :func:`aumaps.serve.app.create_app` for the
    arguments. Any ``host`` other than a loopback address requires an access token: one is
    generated unless ``token`` is given, and printed in the URL. ``port=0`` picks a free port.
    The private upload folder is removed when the server stops.

    Raises:
        OSError: the address cannot be bound.
        FileNotFoundError: ``weights`` or ``models`` names nothing usable.
    """
    import uvicorn

    token = access_token(host, token)
    sock = _bind(host, port)
    try:
        app = create_app(weights, models, max_upload_mb, token, backend, workers)
    except BaseException:
        sock.close()
        raise
    url = server_url(host, sock.getsockname()[1], token)
    print(f"aumaps serve: open {url}", file=sys.stderr, flush=True)
    if host in ("0.0.0.0", "::"):
        print(f"           or {server_url('127.0.0.1', sock.getsockname()[1], token)}", file=sys.stderr, flush=True)
    print("Press Ctrl-C to stop (uploads and results are deleted then).", file=sys.stderr, flush=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, [url]).start()
    config = uvicorn.Config(app, log_level="warning", ws_max_size=16 * 1024 * 1024, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
