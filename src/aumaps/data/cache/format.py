"""The crop cache's format (``docs/data-format.md`` §2) and its reader, :class:`CropCache`.

A cache folder holds ``info.json`` (what it was built from, whether it is complete, which
rows failed and why), ``meta.csv`` (the manifest's descriptive columns, one row per manifest
row) and memory-mappable ``.npy`` arrays: ``crops`` (N, 256, 256, 3) uint8, ``landmarks``
(N, 68, 2) float32 in crop pixels, ``intensities`` (N, A) float32 (NaN = not coded),
``matrices`` (N, 2, 3) float64 image→crop affines, ``valid`` and ``done`` (N,) bool.
:mod:`aumaps.data.cache.build` writes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ...align import CROP_SIZE
from ...atomic import write_text
from ...results import restore_table, write_table
from ..manifest import LANDMARK_COLUMNS, SPLITS, au_columns

__all__ = ["CACHE_FORMAT", "CacheError", "CropCache"]

#: ``info.json``'s ``format`` entry; ``version`` changes when the layout does.
CACHE_FORMAT = "aumaps-crop-cache"
VERSION = 1
#: The reasons a row can be invalid, as ``info.json`` counts them.
FAILURE_KINDS = ("unreadable", "no_face", "bad_landmarks")
#: A split selector over a ``meta.csv`` column: ``fold=1``, ``fold!=1``.
_SELECTOR = re.compile(r"(\w+)(!?=)(.*)")
#: How many invalid rows the printed summary names.
_PRINTED = 10


class CacheError(RuntimeError):
    """A cache folder that cannot be used as asked: incomplete, damaged, or built from
    other inputs."""


def array_specs(n: int, n_aus: int) -> dict[str, tuple[tuple[int, ...], type]]:
    """Shape and dtype of each array file of a cache of ``n`` rows and ``n_aus`` AUs."""
    return {
        "crops": ((n, CROP_SIZE, CROP_SIZE, 3), np.uint8),
        "landmarks": ((n, 68, 2), np.float32),
        "intensities": ((n, n_aus), np.float32),
        "matrices": ((n, 2, 3), np.float64),
        "done": ((n,), np.bool_),
        "valid": ((n,), np.bool_),
    }


class CropCache:
    """A complete crop cache, memory-mapped read-only.

    Args:
        path: The folder :func:`build_cache` wrote.

    Attributes:
        path: The folder.
        info: ``info.json`` as a dict.
        aus: AU numbers, the column order of :attr:`intensities`.
        crops: ``(N, 256, 256, 3)`` uint8 RGB registered crops (zero where invalid).
        landmarks: ``(N, 68, 2)`` float32 landmarks in crop pixels (NaN where invalid).
        intensities: ``(N, A)`` float32, NaN = not coded.
        matrices: ``(N, 2, 3)`` float64 image→crop affines (NaN where invalid).
        valid: ``(N,)`` bool, False where the row has no usable face.
        meta: ``N`` rows of ``image, subject, sequence, frame, split`` and the manifest's
            extra columns (text; ``frame`` int64; ``split`` empty when the manifest had
            none).

    Raises:
        FileNotFoundError: No ``info.json`` in ``path``.
        CacheError: The build has not finished ("run build_cache again to resume"), or
            the files do not match ``info.json``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        info = read_info(self.path)
        if info is None:
            raise FileNotFoundError(f"no crop cache in '{self.path}' (info.json is missing)")
        if "shard" in info:
            i, n = info["shard"]
            raise CacheError(
                f"'{self.path}' is shard {i} of {n} of a crop cache; join the shards with "
                f"merge_caches (aumaps prepare merge) and open the result"
            )
        if not info["complete"]:
            done = self.path / "done.npy"
            written = np.count_nonzero(np.load(done, mmap_mode="r")) if done.is_file() else 0
            raise CacheError(
                f"the crop cache '{self.path}' is incomplete ({written} of {info['n']} rows "
                f"written); run build_cache again to resume it"
            )
        self.info: dict = info
        self.aus: tuple[int, ...] = tuple(info["aus"])
        arrays = open_arrays(self.path, info, mode="r")
        self.crops: np.ndarray = arrays["crops"]
        self.landmarks: np.ndarray = arrays["landmarks"]
        self.intensities: np.ndarray = arrays["intensities"]
        self.matrices: np.ndarray = arrays["matrices"]
        self.valid: np.ndarray = arrays["valid"]
        self.meta: pd.DataFrame = read_meta(self.path / "meta.csv")
        if len(self.meta) != len(self):
            raise CacheError(f"'{self.path}': meta.csv has {len(self.meta)} rows, not {len(self)}")

    def __len__(self) -> int:
        return int(self.info["n"])

    def indices(self, split: str | None = None, valid_only: bool = True) -> np.ndarray:
        """Row numbers of the samples to use.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``; ``None`` for all rows; or a
                selector over a ``meta.csv`` column, ``COLUMN=VALUE`` or ``COLUMN!=VALUE``
                (e.g. ``fold=1`` and ``fold!=1`` for the test and training subjects of a
                k-fold protocol's first fold).
            valid_only: Leave out rows without a usable face.

        Returns:
            ``(M,)`` int64 ascending row numbers.

        Raises:
            ValueError: Unknown ``split`` or selector column, or the manifest had no
                ``split`` column.
        """
        keep = self.valid.copy() if valid_only else np.ones(len(self), dtype=bool)
        selector = _SELECTOR.fullmatch(split) if split is not None else None
        if selector is not None:
            column, operator, value = selector.groups()
            if column not in self.meta:
                raise ValueError(
                    f"no column {column!r} in the cache '{self.path}' to select {split!r} by; "
                    f"its columns: {', '.join(self.meta.columns)}"
                )
            chosen = (self.meta[column].astype(str) == value).to_numpy()
            keep &= chosen if operator == "=" else ~chosen
        elif split is not None:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
            splits = self.meta["split"].to_numpy()
            if not np.any(splits != ""):
                raise ValueError(
                    f"the manifest of '{self.path}' had no split column; give it one "
                    f"(aumaps.data.manifest.assign_splits) and build the cache again"
                )
            keep &= splits == split
        return np.flatnonzero(keep).astype(np.int64)


def meta_table(table: pd.DataFrame) -> pd.DataFrame:
    """``meta.csv``'s columns: the descriptive ones, then the extras (no AUs, no landmarks)."""
    dropped = au_columns(table.columns) + [c for c in LANDMARK_COLUMNS if c in table]
    meta = table.drop(columns=dropped)
    if "split" not in meta:
        meta.insert(list(meta.columns).index("frame") + 1, "split", "")
    return meta.reset_index(drop=True)


def read_meta(path: Path) -> pd.DataFrame:
    """``meta.csv`` as written: every column text but ``frame``, the ``'`` that
    :func:`create` put before text a spreadsheet would run removed."""
    meta = restore_table(pd.read_csv(path, dtype=str, keep_default_na=False))
    meta["frame"] = meta["frame"].astype(np.int64)
    return meta


def fingerprint(meta: pd.DataFrame, intensities: np.ndarray, landmarks: np.ndarray | None) -> str:
    """SHA-256 of everything a cache is built from, to tell a resumable build from another."""
    digest = hashlib.sha256(meta.to_csv(index=False).encode())
    digest.update(np.ascontiguousarray(intensities).tobytes())
    if landmarks is not None:
        digest.update(np.ascontiguousarray(landmarks).tobytes())
    return digest.hexdigest()


def read_info(folder: Path) -> dict | None:
    path = folder / "info.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        message = f"'{path}' is not valid JSON ({error}); rebuild with resume=False"
        raise CacheError(message) from None


def write_info(folder: Path, info: dict) -> None:
    """Replace ``info.json`` atomically, so that a kill never leaves half a file."""
    write_text(folder / "info.json", json.dumps(info, indent=1))


def create(out: Path, identity: dict, meta: pd.DataFrame, intensities: np.ndarray) -> dict:
    """Lay out an empty cache; ``info.json`` is written last, so it marks a usable layout."""
    (out / "info.json").unlink(missing_ok=True)
    for name, (shape, dtype) in array_specs(len(meta), intensities.shape[1]).items():
        array = np.lib.format.open_memmap(out / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
        if name == "intensities":
            array[:] = intensities
        array.flush()
        del array
    write_table(meta, out / "meta.csv")  # text a spreadsheet would run as a formula gets a '
    info = {**identity, "complete": False, "summary": {"failures": []}}
    write_info(out, info)
    return info


def check_resumable(out: Path, info: dict, identity: dict) -> None:
    keys = list(identity) + [key for key in ("redetect_every", "shard") if key in info and key not in identity]
    differ = [key for key in keys if info.get(key) != identity.get(key)]
    if differ:
        details = "; ".join(f"{key}: {_short(info.get(key))} there, {_short(identity[key])} now" for key in differ)
        raise CacheError(
            f"'{out}' holds a crop cache built from other inputs ({details}); pass "
            f"resume=False to rebuild it, or choose another folder"
        )
    open_arrays(out, info, mode="r")  # shapes and dtypes are checked on opening


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:12] + "…"


def open_arrays(folder: Path, info: dict, mode: str) -> dict[str, np.ndarray]:
    """Memory-map the cache's arrays, checking them against ``info``."""
    arrays = {}
    for name, (shape, dtype) in array_specs(info["n"], len(info["aus"])).items():
        path = folder / f"{name}.npy"
        try:
            array = np.load(path, mmap_mode=mode)
        except (OSError, ValueError) as error:
            raise CacheError(f"cannot open '{path}' ({error}); rebuild with resume=False") from None
        if array.shape != shape or array.dtype != dtype:
            raise CacheError(
                f"'{path}' holds {array.dtype} {array.shape}, expected {np.dtype(dtype)} "
                f"{shape}; rebuild with resume=False"
            )
        arrays[name] = array
    return arrays


def summary_text(out: Path, summary: dict) -> str:
    """The printed account of a finished build."""
    lines = [
        f"crop cache '{out}': {summary['kept']} of {summary['rows']} rows kept; "
        f"{summary['no_face']} without a face, {summary['unreadable']} with unreadable images, "
        f"{summary['bad_landmarks']} with unusable landmarks; "
        f"{summary['unlabelled']} without labels (every AU empty)"
    ]
    failures = summary["failures"]
    lines += [f"  row {f['row']}: {f['image']}: {f['reason']}" for f in failures[:_PRINTED]]
    if len(failures) > _PRINTED:
        lines.append(f"  ... and {len(failures) - _PRINTED} more, listed in {out / 'info.json'}")
    return "\n".join(lines)
