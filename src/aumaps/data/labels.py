"""What the readers of licensed AU data sets share: a log of the problems met, ``frame,intensity``
label files, and per-subject tables (splits, folds) attached to a manifest.

:mod:`aumaps.data.bp4d` and :mod:`aumaps.data.disfa` build their manifests with these.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..aus import MAX_INTENSITY
from .manifest import ManifestError

__all__ = ["Problems", "attach_subject_column", "read_label_file", "read_subject_table"]


@dataclass
class Problems:
    """Problems met while reading a data set: each with the file, the line (``0`` for the
    whole file) and what was done about it.

    Attributes:
        entries: ``(file, line, message)`` triples, in the order met.
        counts: How many of each kind (``out_of_range``, ``duplicate``, ``missing_file``,
            ...); kinds that are expected, such as ``not_coded`` (9) labels, are counted
            without an entry.
    """

    entries: list[tuple[str, int, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, file: str | os.PathLike[str], line: int, message: str) -> None:
        """Record one problem of ``kind``."""
        self.count(kind)
        self.entries.append((str(file), line, message))

    def count(self, kind: str, n: int = 1) -> None:
        """Count ``n`` occurrences of ``kind`` without an entry."""
        self.counts[kind] = self.counts.get(kind, 0) + n

    def summary(self, shown: int = 20) -> str:
        """The counts, then the first ``shown`` entries as ``file:line: message``."""
        if not self.counts:
            return "no problems found"
        lines = ["; ".join(f"{kind}: {n}" for kind, n in sorted(self.counts.items()))]
        lines += [f"  {file}:{line}: {message}" for file, line, message in self.entries[:shown]]
        if len(self.entries) > shown:
            lines.append(f"  ... and {len(self.entries) - shown} more")
        return "\n".join(lines)


def read_label_file(
    path: Path, problems: Problems, first_frame: int = 0, allowed: tuple[float, ...] = ()
) -> dict[int, float]:
    """Read a ``frame,intensity`` label file.

    A first line that is not two numbers is taken as a header. Values in ``allowed`` (such
    as BP4D's 9) become NaN, counted as ``not_coded``; other values outside ``[0, 5]`` or
    not numbers are reported (``out_of_range`` / ``unparsable``) and become NaN; a frame
    listed twice is reported (``duplicate``) and masked (NaN), whatever its values.

    Args:
        path: The file.
        problems: Where problems are recorded.
        first_frame: The number of the file's first frame (DISFA: 1), subtracted from every
            frame number, so that keys count from 0.
        allowed: Codes that mean "not coded".

    Returns:
        Frame number (minus ``first_frame``) → intensity (NaN = masked). An unreadable file
        gives ``{}`` (reported as ``missing_file``).
    """
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as error:
        problems.add("missing_file", path, 0, f"cannot read the label file ({error}); its AU is masked")
        return {}
    labels: dict[int, float] = {}
    duplicated: set[int] = set()
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [cell.strip() for cell in row if cell.strip()]
        if not cells:
            continue
        try:
            frame, value = int(float(cells[0])), float(cells[1])
        except (ValueError, IndexError):
            if number > 1 or len(labels):
                problems.add("unparsable", path, number, f"not 'frame,intensity': {','.join(row)!r}; skipped")
            continue
        frame -= first_frame
        if value in allowed:
            problems.count("not_coded")
            value = np.nan
        elif not 0 <= value <= MAX_INTENSITY:
            problems.add("out_of_range", path, number, f"intensity {value:g} outside 0-5; masked")
            value = np.nan
        if frame in labels or frame in duplicated:
            problems.add("duplicate", path, number, f"frame {frame + first_frame} listed again; masked")
            duplicated.add(frame)
            labels[frame] = np.nan
            continue
        labels[frame] = value
    return labels


def read_subject_table(
    path: str | os.PathLike[str], column: str, parse: Callable[[str], object | None], requirement: str
) -> dict[str, object]:
    """Read a ``subject,<column>`` CSV file (a header row naming ``column`` is allowed).

    ``parse`` turns a cell into its value, or ``None`` when the cell is invalid, which raises
    a :class:`ManifestError` naming file and line: "``column`` must be ``requirement``".
    Rows with fewer than two cells or no subject are skipped.
    """
    out = {}
    with open(path, newline="", encoding="utf-8-sig") as file:
        for number, row in enumerate(csv.reader(file), start=1):
            cells = [cell.strip() for cell in row]
            if len(cells) < 2 or not cells[0] or (number == 1 and cells[1].lower() == column):
                continue
            value = parse(cells[1])
            if value is None:
                raise ManifestError(f"{path}:{number}: {column} must be {requirement}, got {cells[1]!r}")
            out[cells[0]] = value
    return out


def attach_subject_column(
    manifest: pd.DataFrame, column: str, value_of: dict, problems: Problems, kind: str, listed_in: str
) -> pd.DataFrame:
    """Insert ``column`` (after ``frame``) from each subject's entry in ``value_of``; rows of
    subjects it lacks are dropped and reported (``kind``: "subject S is in no ``listed_in``")."""
    known = manifest["subject"].isin(list(value_of))
    for subject in sorted(set(manifest.loc[~known, "subject"])):
        problems.add(kind, subject, 0, f"subject {subject} is in no {listed_in}; dropped")
    manifest = manifest.loc[known].reset_index(drop=True)
    manifest.insert(list(manifest.columns).index("frame") + 1, column, manifest["subject"].map(value_of))
    return manifest
