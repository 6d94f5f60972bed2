"""The run log of a study: what ran, with what, and what became of every item.

Each job of a study writes its own log in the output folder, so no two jobs ever write the
same file: ``run.json`` for an unsharded run, ``run.shard-I-of-N.json`` for shard ``I`` of
``N`` (``--shard`` or a ``torchrun`` rank). A log holds the versions (aumaps, Python, PyTorch
and the other libraries), the machine, the model (weights, AUs, model card), the network
engine, the options, and per item (keyed by its CSV's path) its status, counts, timings,
problems, error and baseline estimate, and what its CSV was made from (``input``, the
input's fingerprint, and ``made_with``, the weights' SHA-256 and the aumaps version:
:mod:`aumaps.study.fingerprint`). It is written atomically (:func:`aumaps.atomic.write_text`)
when the run starts, as soon as an item is done (what made a CSV is on record as soon as the
CSV is there), at most once a second otherwise, and when the run ends, always in a final
state; :func:`read_logs` and :func:`merged_items` give the view over all jobs.

Item status: ``pending`` (not yet analysed; ``redo`` says why an existing CSV is made
again), ``done`` (analysed by this run), ``complete`` (its CSV was found complete, so it was
skipped; the entry of the run that made it is kept), ``failed`` (with ``error``; no CSV is
written, a later run tries again) or ``interrupted``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import write_text

__all__ = ["FORMAT", "RunLog", "check_compatible", "command_line", "merged_items", "now", "read_logs", "versions"]

#: The ``format`` field of a run log.
FORMAT = "aumaps-study-log/1"

#: Libraries whose versions a log records (distribution names).
_LIBRARIES = ("torch", "numpy", "opencv-python", "opencv-python-headless", "onnxruntime", "openvino", "dlib", "pandas")


def versions() -> dict[str, str]:
    """Versions of aumaps, Python and the libraries that shape the results (those installed)."""
    found = {"aumaps": __version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def now() -> str:
    """The time now (UTC, ISO 8601, to the second)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_logs(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every run log in ``out_dir`` (``run.json``, ``run.shard-*.json``), by file name;
    unreadable ones are left out."""
    logs = []
    for path in sorted(Path(out_dir).glob("run*.json")):
        try:
            log = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(log, dict) and log.get("format") == FORMAT:
            logs.append(log | {"file": path.name})
    return logs


def merged_items(
    out_dir: str | os.PathLike[str],
    logs: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The items of all jobs' logs (``logs``: those :func:`read_logs` read already), by CSV
    path; where two logs name one item (a study run once whole, once in shards), the most
    recently finished entry wins."""
    items: dict[str, dict[str, Any]] = {}
    for log in read_logs(out_dir) if logs is None else logs:
        for key, entry in log.get("items", {}).items():
            if key not in items or str(entry.get("finished") or "") >= str(items[key].get("finished") or ""):
                items[key] = entry
    return items


def check_compatible(out_dir: str | os.PathLike[str], results_options: Mapping[str, Any]) -> None:
    """Refuse to resume into ``out_dir`` when a log there was made with options that change
    the results (another model, engine, baseline...): complete CSVs would be skipped and the
    study would mix both.

    Raises:
        ValueError: naming the option(s) that differ and the log.
    """
    wanted = json.loads(json.dumps(dict(results_options), default=str))
    for log in read_logs(out_dir):
        before = log.get("options", {}).get("results", {})
        differ = sorted(k for k in set(before) | set(wanted) if before.get(k) != wanted.get(k))
        if differ:
            changes = ", ".join(f"{k}: {before.get(k)!r} then, {wanted.get(k)!r} now" for k in differ)
            raise ValueError(
                f"'{out_dir}' holds results made with other options ({changes}; see {log['file']}): "
                "resuming would mix them; choose another --out-dir, or give --force to analyse everything again"
            )


class RunLog:
    """One job's log (see the module docstring).

    Args:
        path: the log file. The logs already in its folder are read: a resumed run keeps
            what the earlier ones said about the items it finds complete.
        head: the fields describing the run (study, options, shard...).
    """

    def __init__(self, path: str | os.PathLike[str], head: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.earlier_logs = read_logs(self.path.parent)
        self.earlier = merged_items(self.path.parent, self.earlier_logs)
        self.data: dict[str, Any] = {
            "format": FORMAT,
            "versions": versions(),
            **head,
            "started": now(),
            "updated": None,
            "finished": None,
            "status": "running",
            "items": {},
        }
        self._saved = 0.0

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return self.data["items"]

    def update(self, **fields: Any) -> None:
        """Set fields of the head (model, engine, machine...)."""
        self.data.update(fields)

    def set(self, key: str, entry: Mapping[str, Any]) -> None:
        """Set item ``key``'s entry."""
        self.items[key] = dict(entry)

    def complete(self, key: str, entry: Mapping[str, Any]) -> None:
        """Item ``key`` was found complete: its earlier entry (if any) with status ``complete``."""
        earlier = self.earlier.get(key, {})
        kept = earlier if earlier.get("status") in ("done", "complete") else {}
        self.items[key] = {**entry, **kept, "status": "complete"}

    def counts(self) -> dict[str, int]:
        """Items per status."""
        out: dict[str, int] = {}
        for entry in self.items.values():
            out[entry["status"]] = out.get(entry["status"], 0) + 1
        return out

    def save(self, force: bool = True) -> None:
        """Write the log atomically (when not ``force``, at most once a second)."""
        if not force and time.monotonic() - self._saved < 1.0:
            return
        self.data["updated"] = now()
        self.data["counts"] = self.counts()
        data = {**self.data, "items": dict(sorted(self.items.items()))}
        write_text(self.path, json.dumps(data, indent=1, default=_jsonable) + "\n")
        self._saved = time.monotonic()

    def finish(self, status: str) -> None:
        """Mark the run ended (``complete``, ``failed`` or ``interrupted``) and write the log."""
        self.data["finished"] = now()
        self.data["status"] = status
        self.save()


def _jsonable(value: Any) -> Any:
    """JSON for what ``json`` cannot write: NumPy numbers, paths, the rest as text."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def command_line() -> list[str]:
    """The command that started this process, for the log."""
    if not sys.argv or not sys.argv[0]:
        return []
    name = Path(sys.argv[0]).name
    return ["aumaps" if name == "__main__.py" else name, *sys.argv[1:]]
