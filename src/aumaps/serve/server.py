"""Starting the server: :func:`serve` binds, prints how to open the page, and runs uvicorn.

As Jupyter does: the access token is required on every address (``no_token`` is allowed on
the loopback only, with a warning); it comes from ``token_file`` or ``$AUMAPS_TOKEN`` or is
made fresh, never from a command line; the address with the token is printed, and written
into a local redirect file (mode 0600) that the browser is opened on (``open_browser``), so
no command line carries it. ``certfile``/``keyfile`` serve HTTPS; a server reachable from
other machines without them warns that the token travels in clear.
"""

from __future__ import annotations

import socket
import sys
import threading
import webbrowser
from pathlib import Path

from .app import DEFAULT_MAX_UPLOAD_MB, DEFAULT_RETENTION, create_app
from .live import MAX_RECORDED_ROWS
from .security import is_loopback, server_token, write_open_file

__all__ = ["check_device", "parse_duration", "serve", "server_url"]


def server_url(host: str, port: int, token: str | None, scheme: str = "http") -> str:
    """The address to open: ``http://HOST:PORT/`` with ``?token=…`` when one is needed."""
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = socket.gethostname()
    elif ":" in host:
        shown = f"[{host}]"
    return f"{scheme}://{shown}:{port}/" + (f"?token={token}" if token else "")


def parse_duration(text: str) -> float | None:
    """``--retention``: ``90s``, ``30m``, ``12h``, ``7d`` → seconds; ``none`` / ``never`` →
    ``None`` (kept until the server stops).

    Raises:
        ValueError: anything else, or not positive.
    """
    value = text.strip().lower()
    if value in ("none", "never", "forever"):
        return None
    units = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    for unit in sorted(units, key=len, reverse=True):
        if value.endswith(unit):
            try:
                seconds = float(value[: -len(unit)]) * units[unit]
            except ValueError:
                break
            if seconds > 0:
                return seconds
            break
    raise ValueError(f"a retention is a positive duration with its unit (90s, 30m, 12h, 7d) or 'none', not {text!r}")


def check_device(device: str) -> str:
    """``device`` if PyTorch can use it here.

    Raises:
        ValueError: not a device name, or a GPU PyTorch cannot see.
    """
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"--device {device!r}: {err}") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"--device {device}: PyTorch sees no CUDA GPU here (a CPU build of PyTorch, or no "
                "driver); leave --device out to run on the CPU"
            )
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"--device {device}: PyTorch sees {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})")
    elif parsed.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--device {device}: Apple's Metal (MPS) is not available here")
    return device


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port}: {err.strerror or err} (another server on that port? "
            "choose one with --port)"
        ) from None
    sock.listen(128)
    return sock


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    weights: str = "default",
    models: str | Path | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    token_file: str | Path | None = None,
    open_browser: bool = False,
    backend: str = "auto",
    workers: int = 2,
    *,
    no_token: bool = False,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    device: str = "cpu",
    max_pixels: int | None = None,
    retention: float | None = DEFAULT_RETENTION,
    max_recorded_rows: int = MAX_RECORDED_ROWS,
    runtime_folder: str | Path | None = None,
) -> None:
    """Run ``aumaps serve`` until Ctrl-C; see :func:`aumaps.serve.app.create_app` for the
    arguments shared with it. ``port=0`` picks a free port. The token: ``token_file``'s
    first line, else ``$AUMAPS_TOKEN``, else a new one; ``no_token`` (loopback only) turns it
    off. ``certfile`` (PEM, the key inside or in ``keyfile``) serves HTTPS. The redirect file
    goes to ``runtime_folder`` (:func:`aumaps.serve.security.runtime_dir` by default). The
    private upload folder and the redirect file are removed when the server stops.

    Raises:
        OSError: the address cannot be bound, or the token file read.
        FileNotFoundError: ``weights``, ``models`` or a TLS file names nothing usable.
        ValueError: ``no_token`` off the loopback, a bad token, device or TLS option.
    """
    import uvicorn

    local = is_loopback(host)
    if no_token and not local:
        raise ValueError(
            f"--no-token: only a server on the loopback (127.0.0.1) may run without a token, not one on {host}"
        )
    if keyfile is not None and certfile is None:
        raise ValueError("--keyfile needs --certfile (the certificate it belongs to)")
    for name, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name}: no such file: '{path}'")
    check_device(device)
    notes: list[str] = []
    token = None
    if not no_token:
        token, _, notes = server_token(token_file)
    scheme = "https" if certfile else "http"
    sock = _bind(host, port)
    try:
        app = create_app(
            weights,
            models,
            max_upload_mb,
            token,
            backend,
            workers,
            no_token=no_token,
            local_only=local,
            device=device,
            max_pixels=max_pixels,
            retention=retention,
            max_recorded_rows=max_recorded_rows,
        )
    except BaseException:
        sock.close()
        raise
    bound = sock.getsockname()[1]
    url = server_url(host, bound, token, scheme)
    opener = None
    for note in notes:
        _say(f"aumaps serve: warning: {note}")
    if no_token:
        _say(
            "aumaps serve: warning: no access token (--no-token): every program and every user of this machine can "
            "use this server, its uploads, results and camera sessions"
        )
    if not local and scheme == "http":
        _say(
            f"aumaps serve: warning: listening on {host} without HTTPS: the access token and every photo, video and "
            "camera frame travel unencrypted; on a network you do not trust, give --certfile/--keyfile, or keep "
            f"the server on 127.0.0.1 and reach it through `ssh -L {bound}:127.0.0.1:{bound} THIS-MACHINE`"
        )
    _say(
        f"aumaps serve: listening on {scheme}://{host if ':' not in host else f'[{host}]'}:{bound}/"
        + (" (this machine only)" if local else "")
    )
    if token is not None:
        opener = write_open_file(
            server_url("127.0.0.1" if local or host in ("0.0.0.0", "::") else host, bound, token, scheme),
            runtime_folder,
        )
        app.state.on_stop.append(lambda: opener.unlink(missing_ok=True))  # on Ctrl-C and SIGTERM too
        _say(
            f"To open it, open this file in a browser (it holds the token; only you can read it):\n"
            f"    {opener.as_uri()}"
        )
        _say(f"Or copy and paste this address:\n    {url}")
        if host in ("0.0.0.0", "::"):
            _say(f"    {server_url('127.0.0.1', bound, token, scheme)}")
    else:
        _say(f"Open {url}")
    _say("Press Ctrl-C to stop (uploads and results are deleted then).")
    if open_browser:  # the browser's command line holds the file's path, never the token
        threading.Timer(1.0, webbrowser.open, [opener.as_uri() if opener else url]).start()
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws_max_size=16 * 1024 * 1024,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if opener is not None:
            opener.unlink(missing_ok=True)
