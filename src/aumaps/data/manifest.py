"""The manifest: one CSV file that describes any AU data set to aumaps.

Its columns are those of ``docs/data-format.md`` §1: ``image`` and ``subject`` (required),
``sequence``, ``frame`` and ``split`` (optional), one ``AUxx_r`` intensity column per coded
AU, optionally the 68 landmarks as ``x_0``…``x_67``, ``y_0``…``y_67``, and any extra columns,
kept as text. :func:`read_manifest` reads and validates a file, :func:`validate_manifest` a
table built in Python; both return the same normalised :class:`pandas.DataFrame`.
:func:`assign_splits` and :func:`subject_kfold` make subject-disjoint partitions.

Text cells that aumaps' writers neutralised (a ``'`` before text a spreadsheet would run as a
formula: ``'=x.jpg``, :func:`aumaps.results.neutralise_cell`) are read back as they were
(``=x.jpg``); a manifest written by hand or by another program is read as it is otherwise.

Errors name the file, the line of the CSV file (the header is line 1, so data row ``i``,
0-based, is line ``i + 2`` in files without multi-line quoted fields) and the column.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..aus import MAX_INTENSITY, column_name, resolve_aus
from ..results import restore_cell, restore_table

__all__ = [
    "LANDMARK_COLUMNS",
    "META_COLUMNS",
    "SPLITS",
    "ManifestError",
    "assign_splits",
    "au_columns",
    "manifest_aus",
    "landmarks_array",
    "read_manifest",
    "read_manifests",
    "subject_fold_numbers",
    "subject_kfold",
    "validate_manifest",
]

#: The 136 landmark columns, in the order of the file format: all x, then all y.
LANDMARK_COLUMNS: tuple[str, ...] = tuple(f"x_{i}" for i in range(68)) + tuple(f"y_{i}" for i in range(68))
#: The descriptive columns, in the order a validated manifest lists them.
META_COLUMNS: tuple[str, ...] = ("image", "subject", "sequence", "frame", "split")
#: The values the ``split`` column may take.
SPLITS: tuple[str, ...] = ("train", "val", "test")

_REQUIRED = ("image", "subject")
_AU_COLUMN = re.compile(r"AU\d+_r")
#: Cells of numeric columns that mean "empty" (pandas' usual spellings of a missing value).
_MISSING = ("", "nan", "NaN", "NAN", "NA", "N/A", "n/a", "null", "NULL", "None")
#: How many offending cells an error message lists before summarising the rest.
_SHOWN = 10


class ManifestError(ValueError):
    """A manifest that does not follow ``docs/data-format.md``."""


def au_columns(columns: Iterable[str]) -> list[str]:
    """The intensity columns (``AUxx_r``) among ``columns``, in their order."""
    return [c for c in columns if _AU_COLUMN.fullmatch(c)]


def manifest_aus(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> tuple[int, ...]:
    """The AUs a manifest file labels (its ``AUxx_r`` columns, in order), from its header alone.

    Given several files, the AUs any of them labels, in the order first met.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    columns = [c for p in paths for c in au_columns(pd.read_csv(p, nrows=0).columns.str.strip())]
    return resolve_aus(list(dict.fromkeys(columns)))


def read_manifests(
    paths: Sequence[str | os.PathLike[str]],
    on_bad: Literal["raise", "mask"] = "raise",
) -> pd.DataFrame:
    """Read several manifests as one data set (e.g. a second synthetic set, or BP4D + DISFA).

    Each file is read with :func:`read_manifest` (its relative image paths taken from its own
    folder) and the rows are stacked in the order given. An AU that a file does not label is
    NaN (not coded, masked) in its rows; so are its landmarks if it has none.

    Raises:
        ManifestError: A subject appears in two files (two data sets naming different people
            alike; rename one), or some files have a ``split`` column and others not.
        FileNotFoundError, ManifestError: As :func:`read_manifest`, naming the file.
    """
    tables = [read_manifest(p, on_bad=on_bad) for p in paths]
    if not tables:
        raise ManifestError("no manifest given")
    seen: dict[str, str] = {}
    for table in tables:
        source = table.attrs["source"]
        for subject in table["subject"].unique():
            if subject in seen:
                raise ManifestError(
                    f"subject {subject!r} appears in both '{seen[subject]}' and '{source}': "
                    f"subjects of different data sets need different names"
                )
            seen[subject] = source
    with_split = [("split" in t.columns) for t in tables]
    if any(with_split) and not all(with_split):
        missing = [t.attrs["source"] for t, has in zip(tables, with_split) if not has]
        raise ManifestError(f"some manifests have a split column and these do not: {_listing(missing)}")
    out = pd.concat(tables, ignore_index=True, sort=False)
    out.attrs["source"] = " + ".join(t.attrs["source"] for t in tables)
    return validate_manifest(out, on_bad=on_bad)


def read_manifest(
    path: str | os.PathLike[str],
    aus: str | int | Iterable[int | str] | None = None,
    on_bad: Literal["raise", "mask"] = "raise",
) -> pd.DataFrame:
    """Read and validate a manifest CSV file.

    Column names are stripped of surrounding spaces (OpenFace writes one after each comma).

    Args:
        path: The manifest. Relative image paths are taken relative to its folder.
        aus: AUs that must have an intensity column (anything
            :func:`aumaps.aus.resolve_aus` accepts); ``None`` only requires at least one
            ``AUxx_r`` column.
        on_bad: What to do with intensity cells that are not a number in ``[0, 5]`` (such
            as BP4D's ``9`` for "not coded"): ``"raise"`` a :class:`ManifestError`, or
            ``"mask"`` them to NaN with a warning that lists them.

    Returns:
        One row per manifest row (blank lines dropped), index ``0..N-1``, columns in this
        order: ``image`` (absolute path, ``str``; a video frame keeps its ``#index``
        suffix), ``subject`` and ``sequence`` (``str``), ``frame`` (``int64``), ``split``
        (``str``, only when the file has it), every ``AUxx_r`` column (``float64``, NaN =
        not coded), the 136 :data:`LANDMARK_COLUMNS` (``float64``, only when the file has
        them; a row may leave all of them empty), then the extra columns as text.
        ``attrs["source"]`` holds the manifest's absolute path.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ManifestError: A required, AU or landmark column is missing, a cell is invalid
            (the message names the file, the line and the column), or there are no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: '{path}'")
    source = str(path.absolute())
    with path.open(newline="", encoding="utf-8-sig") as file:
        header = next(csv.reader(file), None)
    if not header:
        raise ManifestError(f"manifest '{source}' is empty")
    names = [restore_cell(name.strip()) for name in header]
    numeric = [c for c in names if _is_numeric_column(c)]
    table = pd.read_csv(
        path,
        names=_unique_names(names, source),
        header=0,
        skipinitialspace=True,
        skip_blank_lines=False,
        dtype={c: str for c in names if c not in numeric},
        keep_default_na=False,
        na_values={c: list(_MISSING) for c in numeric},
    )
    table = restore_table(table, names=False)  # the ' that aumaps' writers put before text such as '=x.jpg
    lines = np.arange(len(table)) + 2
    blank = (table.isna() | (table == "")).all(axis=1).to_numpy()
    table = table.loc[~blank].reset_index(drop=True)
    return _validate(
        table,
        source=source,
        base_dir=path.absolute().parent,
        where=[f"line {line}" for line in lines[~blank]],
        aus=aus,
        on_bad=on_bad,
    )


def validate_manifest(
    table: pd.DataFrame,
    aus: str | int | Iterable[int | str] | None = None,
    on_bad: Literal["raise", "mask"] = "raise",
    base_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Validate a manifest held in memory; as :func:`read_manifest`, whose output it accepts.

    Args:
        table: The manifest's columns; cells may be text or already numbers.
        aus, on_bad: As for :func:`read_manifest`.
        base_dir: Folder that relative image paths are taken from; the current one if
            ``None``.

    Returns:
        The normalised table of :func:`read_manifest`; ``attrs["source"]`` is kept from
        ``table`` or set to ``"<DataFrame>"``. Errors name rows by 0-based position.
    """
    source = str(table.attrs.get("source", "<DataFrame>"))
    names = [str(name).strip() for name in table.columns]
    table = table.set_axis(_unique_names(names, source), axis=1).reset_index(drop=True)
    return _validate(
        table,
        source=source,
        base_dir=Path(base_dir if base_dir is not None else os.getcwd()).absolute(),
        where=[f"row {i}" for i in range(len(table))],
        aus=aus,
        on_bad=on_bad,
    )


def landmarks_array(manifest: pd.DataFrame) -> np.ndarray | None:
    """The manifest's landmarks as ``(N, 68, 2)`` float64 ``x, y`` (NaN rows = to detect),
    or ``None`` when it has no landmark columns."""
    if LANDMARK_COLUMNS[0] not in manifest.columns:
        return None
    flat = manifest[list(LANDMARK_COLUMNS)].to_numpy(dtype=np.float64)
    return np.stack([flat[:, :68], flat[:, 68:]], axis=-1)


def assign_splits(
    manifest: pd.DataFrame,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> pd.DataFrame:
    """Give a manifest without a ``split`` column a subject-disjoint one.

    Subjects (sorted, then shuffled with ``seed``) are shared out between ``train``,
    ``val`` and ``test`` in proportion to ``fractions`` of the number of *subjects*
    (largest-remainder rounding; a split with a positive fraction gets at least one
    subject). A manifest that already has ``split`` is returned unchanged (as a copy).

    Args:
        manifest: A validated manifest (needs ``subject``).
        fractions: Shares of train, val and test; non-negative, summing to 1.
        seed: Seed of the shuffle; the same seed and subjects give the same splits.

    Returns:
        A copy of ``manifest`` with a ``split`` column after ``frame``.

    Raises:
        ValueError: Bad ``fractions``, or fewer subjects than splits to fill.
    """
    out = manifest.copy()
    if "split" in out.columns:
        return out
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.shape != (len(SPLITS),) or np.any(shares < 0) or abs(shares.sum() - 1) > 1e-6:
        raise ValueError(
            f"fractions must be {len(SPLITS)} non-negative numbers (train, val, test) "
            f"summing to 1, got {tuple(fractions)}"
        )
    subjects = np.array(sorted(set(out["subject"].astype(str))), dtype=object)
    counts = _share_out(len(subjects), shares)
    order = np.random.default_rng(seed).permutation(len(subjects))
    labels = np.repeat(np.array(SPLITS, dtype=object), counts)
    split_of = dict(zip(subjects[order], labels))
    position = list(out.columns).index("frame") + 1 if "frame" in out.columns else len(out.columns)
    out.insert(position, "split", out["subject"].astype(str).map(split_of).astype(str))
    return out


def subject_kfold(subjects: Iterable[str], k: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Subject-independent k-fold partitions (e.g. DISFA's 3-fold protocol).

    Args:
        subjects: Subject ids; repeats are allowed (a manifest's ``subject`` column).
        k: Number of folds, 2 to the number of distinct subjects.
        seed: Seed of the shuffle that deals subjects into folds.

    Returns:
        ``k`` pairs ``(train_subjects, test_subjects)``, each list sorted; every subject is
        in exactly one test list, fold sizes differ by at most one.

    Raises:
        ValueError: ``k`` out of range.
    """
    unique = sorted(set(subjects))
    if not 2 <= k <= len(unique):
        raise ValueError(f"k must be between 2 and the number of subjects ({len(unique)}), got {k}")
    order = np.random.default_rng(seed).permutation(len(unique))
    folds = [sorted(unique[i] for i in part) for part in np.array_split(order, k)]
    return [(sorted(s for j, fold in enumerate(folds) if j != i for s in fold), test) for i, test in enumerate(folds)]


def _share_out(n: int, shares: np.ndarray) -> np.ndarray:
    """Split ``n`` items in proportion to ``shares`` (largest remainder, no empty share)."""
    wanted = int(np.count_nonzero(shares))
    if n < wanted:
        raise ValueError(f"{n} subject(s) cannot fill {wanted} non-empty splits")
    exact = shares * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    for i in np.flatnonzero((counts == 0) & (shares > 0)):
        counts[np.argmax(counts)] -= 1
        counts[i] = 1
    return counts


def _is_numeric_column(name: str) -> bool:
    return name == "frame" or name in LANDMARK_COLUMNS or bool(_AU_COLUMN.fullmatch(name))


def _unique_names(names: list[str], source: str) -> list[str]:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ManifestError(f"manifest '{source}' repeats the column(s) {', '.join(repeated)}")
    return names


def _validate(
    table: pd.DataFrame,
    source: str,
    base_dir: Path,
    where: list[str],
    aus: str | int | Iterable[int | str] | None,
    on_bad: str,
) -> pd.DataFrame:
    """The checks and normalisation shared by :func:`read_manifest` and
    :func:`validate_manifest`; ``where[i]`` names row ``i`` in messages."""
    if on_bad not in ("raise", "mask"):
        raise ValueError(f"on_bad must be 'raise' or 'mask', got {on_bad!r}")
    columns = list(table.columns)
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise ManifestError(
            f"manifest '{source}' lacks the required column(s) {', '.join(missing)} (its columns: {', '.join(columns)})"
        )
    intensity_columns = au_columns(columns)
    if aus is not None:
        absent = [column_name(a) for a in resolve_aus(aus) if column_name(a) not in columns]
        if absent:
            raise ManifestError(
                f"manifest '{source}' has no intensity column for {', '.join(absent)}; "
                f"its AU columns: {', '.join(intensity_columns) or 'none'}"
            )
    if not intensity_columns:
        raise ManifestError(f"manifest '{source}' has no AU intensity column (AUxx_r)")
    landmark_present = [c for c in LANDMARK_COLUMNS if c in columns]
    if 0 < len(landmark_present) < len(LANDMARK_COLUMNS):
        absent = [c for c in LANDMARK_COLUMNS if c not in columns]
        raise ManifestError(
            f"manifest '{source}' has {len(landmark_present)} of the 136 landmark columns; "
            f"give all of x_0..x_67, y_0..y_67 or none (missing: {_listing(absent)})"
        )
    if table.empty:
        raise ManifestError(f"manifest '{source}' has no rows")

    out: dict[str, object] = {
        "image": _resolve_images(_text(table, "image", source, where), base_dir),
        "subject": _text(table, "subject", source, where),
    }
    sequence = table["sequence"] if "sequence" in columns else pd.Series("", index=table.index)
    out["sequence"] = sequence.fillna("").astype(str).str.strip()
    out["frame"] = _frames(table, out["subject"], out["sequence"], source, where)
    if "split" in columns:
        out["split"] = _splits(table["split"], source, where)
    intensities = _intensities(table, intensity_columns, source, where, on_bad)
    out.update(zip(intensity_columns, intensities.T))
    if landmark_present:
        out.update(zip(LANDMARK_COLUMNS, _landmarks(table, source, where).T))
    for name in columns:
        if name not in out:
            out[name] = table[name].fillna("").astype(str)
    frame = pd.DataFrame(out)
    frame.attrs["source"] = source
    return frame


def _text(table: pd.DataFrame, name: str, source: str, where: list[str]) -> pd.Series:
    """A required text column, stripped; empty cells are an error."""
    values = table[name].fillna("").astype(str).str.strip()
    empty = np.flatnonzero((values == "").to_numpy())
    if len(empty):
        raise ManifestError(f"manifest '{source}': empty '{name}' at {_listing([where[i] for i in empty])}")
    return values


def _resolve_images(images: pd.Series, base_dir: Path) -> list[str]:
    """Image paths made absolute against ``base_dir`` (absolute ones are kept)."""
    return [str(base_dir / image) for image in images]


def _frames(table: pd.DataFrame, subject: pd.Series, sequence: pd.Series, source: str, where: list[str]) -> np.ndarray:
    """``frame`` as int64; without the column, the row's position within its sequence."""
    if "frame" not in table.columns:
        keys = pd.DataFrame({"subject": subject, "sequence": sequence})
        return keys.groupby(["subject", "sequence"], sort=False).cumcount().to_numpy(np.int64)
    values, bad = _numbers(table["frame"])
    bad |= ~np.isfinite(values) | (values != np.round(values)) | (values < 0)
    bad_rows = np.flatnonzero(bad)
    if len(bad_rows):
        cells = [f"{where[i]} ({_cell(table['frame'].iloc[i])})" for i in bad_rows]
        raise ManifestError(f"manifest '{source}': 'frame' must be a non-negative integer at {_listing(cells)}")
    return values.astype(np.int64)


def _splits(column: pd.Series, source: str, where: list[str]) -> pd.Series:
    values = column.fillna("").astype(str).str.strip().str.lower()
    bad = np.flatnonzero(~values.isin(SPLITS).to_numpy())
    if len(bad):
        cells = [f"{where[i]} ({_cell(column.iloc[i])})" for i in bad]
        raise ManifestError(
            f"manifest '{source}': 'split' must be one of {', '.join(SPLITS)} at "
            f"{_listing(cells)} (leave the column out to split by subject with assign_splits)"
        )
    return values


def _intensities(table: pd.DataFrame, names: list[str], source: str, where: list[str], on_bad: str) -> np.ndarray:
    """``(N, len(names))`` float64 intensities; cells outside [0, 5] raise or become NaN."""
    out = np.empty((len(table), len(names)), dtype=np.float64)
    bad_cells = []
    for j, name in enumerate(names):
        values, bad = _numbers(table[name])
        with np.errstate(invalid="ignore"):
            bad |= ~np.isnan(values) & ~((values >= 0) & (values <= MAX_INTENSITY))
        for i in np.flatnonzero(bad):
            bad_cells.append((i, f"{where[i]}, column {name} = {_cell(table[name].iloc[i])}"))
        values[bad] = np.nan
        out[:, j] = values
    if bad_cells:
        cells = [text for _, text in sorted(bad_cells)]
        message = (
            f"manifest '{source}': AU intensities must be numbers in [0, {MAX_INTENSITY:g}] or "
            f"empty (not coded) at {_listing(cells)}"
        )
        if on_bad == "raise":
            raise ManifestError(
                message + "; leave not-coded labels (such as BP4D's 9) empty, or read the "
                "manifest with on_bad='mask' to mask such cells"
            )
        warnings.warn(message + "; these cells are masked (NaN)", stacklevel=4)
    return out


def _landmarks(table: pd.DataFrame, source: str, where: list[str]) -> np.ndarray:
    """``(N, 136)`` float64 landmark columns; each row all numbers or all empty."""
    out = np.empty((len(table), len(LANDMARK_COLUMNS)), dtype=np.float64)
    bad_cells = []
    for j, name in enumerate(LANDMARK_COLUMNS):
        values, bad = _numbers(table[name])
        bad |= np.isinf(values)
        bad_cells += [f"{where[i]}, column {name} = {_cell(table[name].iloc[i])}" for i in np.flatnonzero(bad)]
        out[:, j] = values
    if bad_cells:
        raise ManifestError(f"manifest '{source}': landmarks must be finite numbers at {_listing(bad_cells)}")
    empty = np.isnan(out)
    partial = np.flatnonzero(empty.any(axis=1) & ~empty.all(axis=1))
    if len(partial):
        raise ManifestError(
            f"manifest '{source}': a row must give all 136 landmark values or none; "
            f"some are empty at {_listing([where[i] for i in partial])}"
        )
    return out


def _numbers(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column as float64 (empty cells NaN) and the mask of cells that are not numbers."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        return values, np.zeros(len(column), bool)
    text = column.astype(object).where(column.notna(), "").astype(str).str.strip()
    empty = text.isin(_MISSING).to_numpy()
    values = pd.to_numeric(text.where(~empty), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values, np.isnan(values) & ~empty


def _cell(value: object) -> str:
    """A cell's value for a message: text quoted, numbers as written."""
    if isinstance(value, str):
        return repr(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _listing(items: Sequence[str]) -> str:
    """``items`` joined for a message, the first :data:`_SHOWN` and a count of the rest."""
    shown = ", ".join(items[:_SHOWN])
    return shown if len(items) <= _SHOWN else f"{shown} and {len(items) - _SHOWN} more"


def subject_fold_numbers(subjects: Iterable[str], k: int, seed: int = 0) -> dict[str, int]:
    """Each subject's test fold, 1..``k``, in :func:`subject_kfold`'s partition."""
    return {s: i + 1 for i, (_, test) in enumerate(subject_kfold(subjects, k, seed)) for s in test}
