"""What a study's results were made from, so that a resumed run redoes what no longer holds.

Every item analysed is logged with two fingerprints (:mod:`aumaps.study.runlog`):

* ``input`` (:func:`input_fingerprint`): the item's files (the video, or a folder's images):
  ``size`` (bytes in all), ``stat`` (a digest of each file's name, size and modification
  time: stat calls only) and ``sha256`` (of the contents);
* ``made_with`` (:class:`ModelKey`): the SHA-256 of the weights file and the aumaps version.

A resumed run takes an item whose CSV exists as complete only when both still hold
(:func:`stale_reason`): the same model and aumaps version, and the same input. The input is
compared cheaply first: the same ``stat`` digest is the same input; another total size is
another input; the same size with other times (a copy, a ``touch``) is decided by the
contents' SHA-256. The weights' SHA-256 is the registry's pinned one for registered models
(``--weights default``: nothing to read) and is otherwise read once per file and kept in the
run log with the file's size and time (:func:`weights_digest`), so a resumed run that finds
everything complete reads no weights and imports no PyTorch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from .discover import StudyItem

__all__ = ["ModelKey", "input_fingerprint", "same_input", "stale_reason", "weights_digest", "weights_file"]

#: Bytes read at a time when hashing.
_CHUNK = 1 << 20


def _files(item: StudyItem) -> list[Path]:
    """The files an item is made of (a video: itself; folders: their images, in order)."""
    return [Path(item.source)] if item.kind == "video" else [Path(p) for p in item.files]


def _stat_digest(files: Iterable[Path]) -> tuple[int, str]:
    """(total size, digest of each file's name, size and modification time)."""
    digest = hashlib.sha256()
    total = 0
    for path in files:
        info = path.stat()
        total += info.st_size
        digest.update(f"{path.name}\t{info.st_size}\t{info.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return total, digest.hexdigest()[:32]


def _content_digest(files: list[Path]) -> str:
    """SHA-256 of the files' contents (with their names when there are several)."""
    digest = hashlib.sha256()
    for path in files:
        if len(files) > 1:
            digest.update(path.name.encode("utf-8", "surrogateescape") + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def input_fingerprint(item: StudyItem, content: bool = True) -> dict[str, Any]:
    """The item's input fingerprint: ``size``, ``stat`` and (``content``) ``sha256``; see the
    module docstring.

    Raises:
        OSError: a file cannot be read.
    """
    files = _files(item)
    size, stat = _stat_digest(files)
    found: dict[str, Any] = {"size": size, "stat": stat}
    if content:
        found["sha256"] = _content_digest(files)
    return found


def same_input(recorded: Mapping[str, Any], item: StudyItem) -> bool:
    """Whether ``item``'s files are still those ``recorded`` (an :func:`input_fingerprint`)
    describes: the same stat digest, or the same size and contents."""
    try:
        size, stat = _stat_digest(_files(item))
        if stat == recorded.get("stat"):
            return True
        if size != recorded.get("size") or not recorded.get("sha256"):
            return False
        return _content_digest(_files(item)) == recorded["sha256"]
    except OSError:
        return False


def weights_file(weights: str | os.PathLike[str]) -> tuple[Path | None, str | None]:
    """The file ``--weights`` names and its pinned SHA-256: a registered name's file (not
    necessarily downloaded yet) and the registry's digest; any other value, that path and None."""
    from ..pretrained import REGISTRY

    if isinstance(weights, str) and weights in REGISTRY:
        entry = REGISTRY[weights]
        return entry.path(), entry.sha256
    return Path(weights), None


def weights_digest(
    path: Path | None, pinned: str | None = None, known: Iterable[Mapping[str, Any]] = ()
) -> tuple[str | None, dict[str, Any] | None]:
    """The SHA-256 of the weights file ``path`` (None when there is none), and the record
    that lets a later run skip reading it (``path``, ``size``, ``mtime_ns``, ``sha256``).

    Args:
        path: the weights file.
        pinned: the registry's digest for it (a file that does not match is refused when
            the model is loaded, so it is the file's digest; nothing is read).
        known: records of earlier runs (their logs' ``made_with.weights_file``): one with the
            same path, size and modification time gives the digest without reading the file.
    """
    if path is None:
        return None, None
    try:
        info = path.stat()
    except OSError:
        return pinned, None  # not there (yet): a registered model is fetched when the model is loaded
    record = {"path": str(path.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    if pinned:
        return pinned, {**record, "sha256": pinned}
    for earlier in known:
        if earlier and all(earlier.get(k) == v for k, v in record.items()) and earlier.get("sha256"):
            return earlier["sha256"], {**record, "sha256": earlier["sha256"]}
    digest = _content_digest([path])
    return digest, {**record, "sha256": digest}


@dataclass(frozen=True)
class ModelKey:
    """What made a CSV besides its input: the weights' SHA-256 and the aumaps version.

    Attributes:
        weights_sha256: the weights file's digest (None: unknown, e.g. a model given as an
            object without a file).
        aumaps: the aumaps version.
        weights_file: the record of :func:`weights_digest` (kept in the run log).
    """

    weights_sha256: str | None
    aumaps: str = __version__
    weights_file: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, weights: str | os.PathLike[str], known: Iterable[Mapping[str, Any]] = ()) -> ModelKey:
        """The key of the model ``weights`` names (``--weights``)."""
        digest, record = weights_digest(*weights_file(weights), known=known)
        return cls(digest, __version__, record)

    def entry(self) -> dict[str, Any]:
        """What each item's log entry records (``made_with``)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def stale_reason(entry: Mapping[str, Any] | None, item: StudyItem, key: ModelKey) -> str | None:
    """Why the existing CSV of ``item`` must be made again, or None when it still holds.

    Args:
        entry: the log entry of the run that made the CSV (:func:`~aumaps.study.runlog.merged_items`).
        item: the item as it is now.
        key: the model this run uses.
    """
    made = (entry or {}).get("made_with")
    if not entry or entry.get("status") not in ("done", "complete") or not made or not entry.get("input"):
        return "no run log says what made its CSV"
    if made.get("aumaps") != key.aumaps:
        return f"made by aumaps {made.get('aumaps')}, this is aumaps {key.aumaps}"
    if made.get("weights_sha256") != key.weights_sha256:
        return "the model changed (another weights file SHA-256)"
    if not same_input(entry["input"], item):
        return "the input changed since it was analysed"
    return None
