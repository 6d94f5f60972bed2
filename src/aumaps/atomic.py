"""Files written whole or not at all.

Every file aumaps writes that something else later trusts (checkpoints, manifests, cache
descriptions, logs, downloaded weights, per-video results) is written to a temporary name in
the same folder and renamed into place only when complete, so an interrupted write (Ctrl-C,
a killed job, a full disk) never leaves a truncated file under the real name. Temporary
names are unique per process, so parallel jobs writing the same file do not collide.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "write_text"]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; it replaces ``path`` when the block ends
    without an error, and is removed otherwise. Parent folders are created. The temporary
    file is not created here, so whatever writes it gives it the usual permissions (0666 less
    the umask), which the final file keeps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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
