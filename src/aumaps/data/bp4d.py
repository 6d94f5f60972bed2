"""BP4D-Spontaneous as distributed for FERA 2015 → an aumaps manifest.

The layout read (``ROOT`` is the folder the data set was unpacked into)::

    ROOT/F001/T1/0001.jpg ...              frames; the frame number is the file name's digits
    ROOT/F001.zip                          or one zip per subject, holding F001/T1/... or T1/...
    ROOT/AUCoding/AU_INT/AU06/F001_T1_AU06.csv   rows "frame,intensity": 0-5, 9 = not coded
    ROOT/AUCoding/AU_OCC/F001_T1.csv             header row of AU numbers (first column:
                                                 frame), rows of 0/1 (9 = not coded)

Frames from a zip are listed as ``ROOT/F001.zip#F001/T1/0001.jpg``; the crop cache reads
such members straight from the archive (nothing is extracted).

Labels are masked (NaN), never 0, where they are ``9``, where the frame has no row in the
label file, or where the label file is missing; rows that are not a valid intensity (``7``,
text) and frame numbers that appear twice in one file are reported with file and line and
masked too. :class:`Problems` collects those reports; :func:`read_bp4d` returns it with the
manifest and prints its summary.

**Subject split.** ``split="fera2015"`` marks :data:`FERA2015_TRAIN` subjects ``train`` and
:data:`FERA2015_DEVEL` subjects ``val``: the FERA 2015 training partition (21 subjects: the
odd-numbered F001–F023 and M001–M017) and development partition (20 subjects: the
even-numbered F002–F022 and M002–M018), as listed in the FERA 2015 baseline code
(``train_recs``/``devel_recs`` in T. Baltrusaitis' FERA-2015 repository) and in later works
that use the challenge's partition. A split file (``subject,split`` rows) replaces the
constants. ``split="kfold:K"`` adds a ``fold``
column (1..K, :func:`~aumaps.data.manifest.subject_kfold`) for subject-independent k-fold.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..aus import column_name, resolve_aus
from .labels import Problems, attach_subject_column, read_label_file, read_subject_table
from .manifest import SPLITS, ManifestError, subject_fold_numbers

__all__ = [
    "BP4D_AUS",
    "BP4D_SUBJECTS",
    "FERA2015_DEVEL",
    "FERA2015_TRAIN",
    "Problems",
    "attach_subject_column",
    "read_bp4d",
    "read_label_file",
    "read_subject_table",
    "subject_splits",
]

#: The AUs FERA 2015 codes for intensity on BP4D.
BP4D_AUS: tuple[int, ...] = (6, 10, 12, 14, 17)
#: BP4D-Spontaneous' 41 subjects.
BP4D_SUBJECTS: tuple[str, ...] = tuple(f"F{i:03d}" for i in range(1, 24)) + tuple(f"M{i:03d}" for i in range(1, 19))
#: FERA 2015's 21 training subjects (the odd-numbered ones; see the module docstring).
FERA2015_TRAIN: tuple[str, ...] = tuple(f"F{i:03d}" for i in range(1, 24, 2)) + tuple(
    f"M{i:03d}" for i in range(1, 18, 2)
)
#: FERA 2015's 20 development subjects (the even-numbered ones).
FERA2015_DEVEL: tuple[str, ...] = tuple(s for s in BP4D_SUBJECTS if s not in FERA2015_TRAIN)

_SUBJECT = re.compile(r"[FM]\d{3}")
_TASK = re.compile(r"T\d+")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_DIGITS = re.compile(r"(\d+)\D*$")
#: BP4D's code for "not coded".
NOT_CODED = 9.0


def read_bp4d(
    root: str | os.PathLike[str],
    aus: str | int | Iterable[int | str] = BP4D_AUS,
    split: str | os.PathLike[str] | None = "fera2015",
    occurrence: bool = True,
    problems: Problems | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """Build the manifest of a BP4D-Spontaneous / FERA 2015 folder.

    Args:
        root: The distributed folder (see the module docstring for its layout).
        aus: AUs whose intensities are read (``AU_INT/AUxx``).
        split: ``"fera2015"`` (``train``/``val`` from :data:`FERA2015_TRAIN` /
            :data:`FERA2015_DEVEL`), ``"kfold:K"`` (a ``fold`` column, 1..K), ``None``
            (no split column), or a CSV file of ``subject,split`` rows (replaces the
            constants). Subjects that a subject list leaves out are reported and dropped.
        occurrence: Also read ``AU_OCC`` into extra columns ``AUxx_occ`` (``1``, ``0`` or
            empty when not coded).
        problems: Collects the problems met; a new one if ``None``. Returned in
            ``attrs["problems"]``.
        verbose: Print the problems' summary.

    Returns:
        The manifest (``docs/data-format.md`` §1): ``image`` (absolute; zip members as
        ``ROOT/F001.zip#F001/T1/0001.jpg``), ``subject``, ``sequence`` (the task, ``T1``…),
        ``frame`` (int), ``split`` (unless ``None``) or ``fold``, ``AUxx_r`` (float, NaN
        = masked), then ``AUxx_occ``; one row per image, sorted by subject, task and frame.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ManifestError: No frames were found.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise FileNotFoundError(f"BP4D folder not found: '{root}'")
    aus = resolve_aus(aus)
    problems = Problems() if problems is None else problems
    frames = _find_frames(root, problems)
    if frames.empty:
        raise ManifestError(f"no BP4D frames under '{root}': expected F001/T1/0001.jpg (or F001.zip) folders")
    coding = root / "AUCoding"
    rows = []
    for (subject, task), group in frames.groupby(["subject", "sequence"], sort=True):
        table = group.sort_values("frame").reset_index(drop=True)
        for au in aus:
            name = f"AU{au:02d}"
            path = coding / "AU_INT" / name / f"{subject}_{task}_{name}.csv"
            if not path.is_file():
                problems.add("missing_file", path, 0, f"no {name} intensity labels for {subject} {task}; masked")
                labels = {}
            else:
                labels = read_label_file(path, problems, allowed=(NOT_CODED,))
            table[column_name(au)] = table["frame"].map(labels).astype(np.float64)
            _count_unmatched(labels, table["frame"], path, problems)
        if occurrence:
            table = _add_occurrence(table, coding / "AU_OCC" / f"{subject}_{task}.csv", problems)
        rows.append(table)
    manifest = pd.concat(rows, ignore_index=True)
    manifest = _apply_split(manifest, split, problems)
    if verbose:
        print(
            f"BP4D '{root}': {len(manifest)} frames of {manifest['subject'].nunique()} subjects; " + problems.summary()
        )
    manifest.attrs["problems"] = problems
    return manifest


def subject_splits(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a split file: ``subject,split`` rows (a header row is allowed), split one of
    ``train``, ``val``, ``test``.

    Raises:
        ManifestError: A split name is unknown (the message names file and line).
    """
    return read_subject_table(
        path, "split", lambda cell: cell.lower() if cell.lower() in SPLITS else None, f"one of {', '.join(SPLITS)}"
    )


def _apply_split(manifest: pd.DataFrame, split: str | os.PathLike[str] | None, problems: Problems) -> pd.DataFrame:
    """Add the ``split`` (or ``fold``) column; drop, with a report, subjects a list omits."""
    if split is None:
        return manifest
    if isinstance(split, str) and split.startswith("kfold:"):
        fold_of = subject_fold_numbers(manifest["subject"], int(split.split(":", 1)[1]))
        return attach_subject_column(manifest, "fold", fold_of, problems, "no_split", f"fold of {split!r}")
    if split == "fera2015":
        split_of = {s: "train" for s in FERA2015_TRAIN} | {s: "val" for s in FERA2015_DEVEL}
    else:
        split_of = subject_splits(split)
    return attach_subject_column(manifest, "split", split_of, problems, "no_split", f"list of split {str(split)!r}")


def _frame_number(name: str) -> int | None:
    match = _DIGITS.search(Path(name).stem)
    return int(match.group(1)) if match else None


def _find_frames(root: Path, problems: Problems) -> pd.DataFrame:
    """Every frame image: ``image, subject, sequence, frame`` rows, from subject folders
    and subject zips (a folder wins over a zip of the same subject)."""
    found: list[tuple[str, str, str, int]] = []
    folders = {p.name for p in root.iterdir() if p.is_dir() and _SUBJECT.fullmatch(p.name)}
    for subject in sorted(folders):
        for task in sorted(p for p in (root / subject).iterdir() if p.is_dir() and _TASK.fullmatch(p.name)):
            for image in task.iterdir():
                if image.suffix.lower() in _IMAGE_SUFFIXES:
                    found.append(_entry(str(image), subject, task.name, image.name, problems))
    for archive in sorted(root.glob("*.zip")):
        subject = archive.stem
        if not _SUBJECT.fullmatch(subject) or subject in folders:
            continue
        try:
            with zipfile.ZipFile(archive) as zipped:
                names = zipped.namelist()
        except (OSError, zipfile.BadZipFile) as error:
            problems.add("unreadable_zip", archive, 0, f"not a readable zip ({error}); subject skipped")
            continue
        for name in names:
            parts = [p for p in name.split("/") if p]
            if parts and parts[0] == subject:
                parts = parts[1:]
            if len(parts) == 2 and _TASK.fullmatch(parts[0]) and Path(parts[1]).suffix.lower() in _IMAGE_SUFFIXES:
                found.append(_entry(f"{archive}#{name}", subject, parts[0], parts[1], problems))
    table = pd.DataFrame([f for f in found if f[3] >= 0], columns=["image", "subject", "sequence", "frame"])
    repeated = table.duplicated(["subject", "sequence", "frame"], keep="first")
    for image in table.loc[repeated, "image"]:
        problems.add("duplicate", image, 0, "a second image of the same frame number; skipped")
    return table.loc[~repeated].reset_index(drop=True)


def _entry(image: str, subject: str, task: str, name: str, problems: Problems) -> tuple[str, str, str, int]:
    frame = _frame_number(name)
    if frame is None:
        problems.add("no_frame_number", image, 0, "no frame number in the file name; skipped")
        return image, subject, task, -1
    return image, subject, task, frame


def _count_unmatched(labels: dict[int, float], frames: pd.Series, path: Path, problems: Problems) -> None:
    """Report label rows whose frame has no image (they are dropped)."""
    extra = sorted(set(labels) - set(frames))
    if extra:
        problems.add(
            "label_without_image",
            path,
            0,
            f"{len(extra)} label row(s) have no image (frames {extra[0]}..{extra[-1]}); dropped",
        )


def _add_occurrence(table: pd.DataFrame, path: Path, problems: Problems) -> pd.DataFrame:
    """Add ``AUxx_occ`` text columns (``"1"``, ``"0"``, ``""``) from an ``AU_OCC`` file."""
    if not path.is_file():
        problems.add("missing_file", path, 0, "no occurrence labels; occurrence columns left empty")
        return table
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    try:
        aus = [int(str(name).strip().upper().removeprefix("AU")) for name in raw.columns[1:]]
        frames = raw.iloc[:, 0].astype(float).astype(int)
    except ValueError as error:
        problems.add("unparsable", path, 1, f"header or frame column is not numbers ({error}); skipped")
        return table
    duplicated = frames.duplicated(keep=False)
    for line in np.flatnonzero(duplicated.to_numpy()) + 2:
        problems.add("duplicate", path, int(line), "frame listed twice; its occurrences are left empty")
    for au, name in zip(aus, raw.columns[1:]):
        values = raw[name].str.strip().where(raw[name].str.strip().isin(["0", "1"]), "")
        values = values.where(~duplicated, "")
        lookup = dict(zip(frames[~duplicated], values[~duplicated]))
        table[f"AU{au:02d}_occ"] = table["frame"].map(lookup).fillna("")
    return table
