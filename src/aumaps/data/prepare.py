"""Preparing a data set for training: its manifest, then its crop cache, in one call.

``aumaps prepare`` is a thin layer over these functions:

* :func:`prepare_dataset`: a licensed data set's distributed folder (BP4D / FERA 2015,
  DISFA) → ``OUT/manifest.csv`` → the crop cache ``OUT/cache`` (or, with a shard, the shard's
  folder);
* :func:`prepare_manifests`: one or several manifests (stacked into one data set) → a cache;
* :func:`write_manifest`: a manifest table to CSV, atomically (shards running at once may
  write the same manifest).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..aus import resolve_aus
from ..results import write_table
from ..shards import parse_shard  # re-exported: aumaps.data.prepare.parse_shard is public
from .cache import build_cache
from .manifest import manifest_aus

__all__ = ["DATASETS", "parse_shard", "prepare_dataset", "prepare_manifests", "write_manifest"]

#: The licensed data sets :func:`prepare_dataset` reads.
DATASETS = ("bp4d", "disfa")


def write_manifest(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a manifest table to ``path`` atomically; returns the path. Text cells a
    spreadsheet would run as formulas get a ``'`` (:func:`aumaps.results.write_table`),
    which :func:`~aumaps.data.manifest.read_manifest` removes."""
    return write_table(table, path)


def prepare_manifests(
    manifests: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    cache: str | os.PathLike[str],
    aus: str | Sequence[int] | None = None,
    **build: object,
) -> Path:
    """Register one manifest, or several stacked into one data set, into the crop cache
    ``cache``; ``aus`` defaults to every ``AUxx_r`` column. ``build`` goes to
    :func:`~aumaps.data.cache.build_cache` (``workers``, ``resume``, ``shard``,
    ``redetect_every``, ``progress``)."""
    several = not isinstance(manifests, (str, os.PathLike))
    source = list(manifests) if several and len(manifests) > 1 else (manifests[0] if several else manifests)
    chosen = resolve_aus(aus) if aus else manifest_aus(source)
    return build_cache(source, cache, aus=chosen, **build)


def prepare_dataset(
    kind: str,
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    aus: str | Sequence[int] | None = None,
    split: str | None = "fera2015",
    folds: str | None = "standard",
    camera: str = "left",
    shard: tuple[int, int] | None = None,
    **build: object,
) -> Path:
    """A licensed data set's folder → ``out/manifest.csv`` → its crop cache.

    Args:
        kind: ``"bp4d"`` or ``"disfa"``.
        root: the distributed folder.
        out: the output folder (created).
        aus: AUs to keep (default: every AU the data set codes).
        split: BP4D: ``"fera2015"``, ``"kfold:K"``, a ``subject,split`` CSV, or ``None``.
        folds: DISFA: ``"standard"``, ``"kfold"``, a ``subject,fold`` CSV, or ``None``.
        camera: DISFA: ``"left"`` or ``"right"``.
        shard: ``(i, n)``: build shard ``i`` of ``n`` into ``out/cache-shard-i-of-n``.
        build: more :func:`~aumaps.data.cache.build_cache` options.

    Returns:
        The cache folder.
    """
    if kind not in DATASETS:
        raise ValueError(f"unknown data set {kind!r}; choose one of {', '.join(DATASETS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "bp4d":
        from .bp4d import read_bp4d

        table = read_bp4d(root, split=split)
    else:
        from .disfa import read_disfa

        table = read_disfa(root, camera, folds=folds)
    manifest = write_manifest(table, out / "manifest.csv")
    cache = out / ("cache" if shard is None else f"cache-shard-{shard[0]}-of-{shard[1]}")
    return prepare_manifests(manifest, cache, aus, shard=shard, **build)
