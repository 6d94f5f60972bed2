"""Files written whole or not at all.

Every file aumaps writes that something else later trusts (checkpoints, manifests, cache
descriptions, logs, downloaded weights, per-video results, reports, plots, overlays) is
written to a temporary name in the same folder and renamed into place only when complete, so
an interrupted write (Ctrl-C, a killed job, a full disk) never leaves a truncated file under
the real name. Temporary names are hidden (``.NAME.PID-XXXXXXXX.part``, :func:`temporary_name`)
and unique per process, so parallel jobs writing the same file do not collide, and
:func:`leftovers` finds what a killed writer left. Folders (a report's) are written the same
way (:func:`atomic_folder`).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_folder",
    "atomic_path",
    "atomic_write",
    "leftovers",
    "remove",
    "temporary_name",
    "write_bytes",
    "write_text",
]

#: What every temporary name ends with (before the suffix kept by ``keep_suffix``).
PART = ".part"


def temporary_name(path: str | os.PathLike[str], keep_suffix: bool = False) -> Path:
    """A fresh hidden temporary name beside ``path``: ``.NAME.PID-XXXXXXXX.part``, or with
    ``keep_suffix`` ``.NAME.PID-XXXXXXXX.part.SUFFIX`` (for writers that choose the format by
    the suffix: OpenCV's video writer and image encoder, matplotlib)."""
    path = Path(path)
    name = f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{PART}"
    return path.with_name(name + (path.suffix if keep_suffix else ""))


def leftovers(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files and folders that writers of ``path`` killed before they finished left."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(
        p
        for p in path.parent.glob(f".{glob.escape(path.name)}.*{PART}*")
        if p.name.endswith(PART) or p.name.endswith(PART + path.suffix)
    )


def remove(path: str | os.PathLike[str]) -> None:
    """Remove a file or a folder tree, if there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike[str], keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; it replaces ``path`` when the block ends
    without an error, and is removed otherwise. Parent folders are created. The temporary
    file is not created here, so whatever writes it gives it the usual permissions (0666 less
    the umask), which the final file keeps. ``keep_suffix``: the temporary name ends with
    ``path``'s suffix (see :func:`temporary_name`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path, keep_suffix)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``path`` (created) to write into; when the block ends without
    an error, whatever was at ``path`` is removed and the folder takes its place; otherwise the
    folder is removed. A reader never sees a half-written folder under the real name (at worst,
    for an instant, none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    temporary.mkdir()
    try:
        yield temporary
        remove(path)
        os.replace(temporary, path)
    finally:
        remove(temporary)


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open(path, mode, **kwargs)``, written atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as temporary, open(temporary, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)
