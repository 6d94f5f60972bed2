"""The engine store: what is exported, compiled or verified once, kept in the user cache.

Building a fast engine costs seconds (exporting to ONNX, checking its accuracy against
float32, quantizing); the store keeps the result so that the cost is paid once per model and
machine, not on every run. An entry is a folder under ``cache_dir()/engines/`` named by the
hash of its **key**: the weights' digest, the engine, and everything that could make an old
result wrong (aumaps, PyTorch and engine library versions, the CPU capability, whether
bfloat16 is native). Change any of them and the entry is simply not found.

Each entry holds ``entry.json`` (the key, the artifact's SHA-256, and facts such as the
measured error) and at most one artifact file. Entries are written into a temporary folder
and renamed into place, so a killed process never leaves half an entry; on reading, an entry
whose ``entry.json`` is unreadable, whose key differs or whose artifact is missing or does
not match its SHA-256 is removed and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..hardware import cpu_capability, cpu_has_native_bf16

__all__ = ["Entry", "EngineStore", "machine_key", "weights_digest"]

log = logging.getLogger(__name__)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's architecture and parameters (names, dtypes, shapes, values)."""
    digest = hashlib.sha256(json.dumps(getattr(model, "config", {}), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def machine_key(*libraries: str) -> dict[str, str]:
    """What about this machine and its software an engine depends on: aumaps and PyTorch
    versions, the versions of ``libraries`` (import names), CPU capability, native bfloat16."""
    from importlib import metadata

    from .. import __version__

    key = {
        "aumaps": __version__,
        "torch": torch.__version__,
        "cpu": cpu_capability(),
        "native_bf16": str(cpu_has_native_bf16()),
    }
    for name in libraries:
        try:
            key[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            key[name] = "missing"
    return key


@dataclass
class Entry:
    """A stored engine: its folder, its artifact (or None) and its recorded facts."""

    folder: Path
    artifact: Path | None
    facts: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class EngineStore:
    """Entries keyed by plain dicts (see the module docstring).

    Args:
        root: the store's folder; default ``aumaps.pretrained.cache_dir() / "engines"``.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        if root is None:
            from ..pretrained import cache_dir

            root = cache_dir() / "engines"
        self.root = Path(root)

    @staticmethod
    def _name(key: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]

    def folder(self, key: dict[str, Any]) -> Path:
        """Where the entry of ``key`` lives (whether or not it exists)."""
        return self.root / self._name(key)

    def get(self, key: dict[str, Any]) -> Entry | None:
        """The entry of ``key``, or None when there is none or it is stale or corrupt (then
        it is removed, with a log message saying why)."""
        folder = self.folder(key)
        if not folder.is_dir():
            return None
        problem = None
        try:
            meta = json.loads((folder / "entry.json").read_text())
            if meta.get("key") != json.loads(json.dumps(key)):
                problem = "its key differs"
            elif meta.get("artifact"):
                artifact = folder / meta["artifact"]
                if not artifact.is_file() or _sha256(artifact) != meta.get("sha256"):
                    problem = f"its file {meta['artifact']} is missing or damaged"
        except (OSError, ValueError, AttributeError) as err:
            problem = f"entry.json is unreadable ({err})"
        if problem:
            self.discard(key, problem)
            return None
        artifact = folder / meta["artifact"] if meta.get("artifact") else None
        return Entry(folder, artifact, dict(meta.get("facts", {})))

    def put(
        self,
        key: dict[str, Any],
        facts: dict[str, Any] | None = None,
        artifact: str | None = None,
        write: Callable[[Path], None] | None = None,
    ) -> Entry:
        """Store an entry for ``key``: ``write(path)`` writes the artifact named ``artifact``
        (if any); ``facts`` are recorded beside it. Returns the stored entry (another
        process's, if one stored the same key meanwhile)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".building-"))
        try:
            meta: dict[str, Any] = {"key": key, "facts": facts or {}}
            if artifact is not None:
                if write is None:
                    raise ValueError("an artifact needs a write function")
                write(tmp / artifact)
                meta.update(artifact=artifact, sha256=_sha256(tmp / artifact))
            (tmp / "entry.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
            final = self.folder(key)
            if final.exists():  # stale (the caller found none valid) or written by a racing process
                if self.get(key) is not None:
                    return self.get(key)  # type: ignore[return-value]
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.replace(tmp, final)
            except OSError:  # a racing process renamed its own entry first
                entry = self.get(key)
                if entry is None:
                    raise
                return entry
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Entry(final, final / artifact if artifact else None, dict(facts or {}))

    def discard(self, key: dict[str, Any], why: str = "") -> None:
        """Remove the entry of ``key`` (no error if there is none)."""
        folder = self.folder(key)
        if folder.exists():
            log.warning("engine cache entry %s %s: rebuilding it", folder, why or "discarded")
            shutil.rmtree(folder, ignore_errors=True)
