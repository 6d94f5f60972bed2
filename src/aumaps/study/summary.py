"""Summaries of a study: one row per video and face track, ready for statistics.

What OpenFace users write a script (or OpenFaceR) for: :func:`summarize` reads every
per-video CSV under a results folder (the schema of :mod:`aumaps.results`; CSVs of images,
other CSVs and temporary files are skipped) and gives, per video and face track:

* ``video`` (the CSV's path under the folder, without ``.csv``), ``name`` (its last part,
  without a video suffix: what a participant sheet calls it), ``face_id``;
* ``frames`` (the video's), ``frames_with_face`` (frames where this track was analysed);
* per AU column ``X`` (``AU06_r``, and ``AU06_r_corr`` when the CSV has per-person
  corrected intensities): ``X_mean``, ``X_median``, ``X_max``, ``X_std`` (population),
  ``X_active`` (share of the track's frames with ``X`` ≥ 1, FACS level A), ``X_episodes``
  (activation episodes: runs of consecutive video frames where the track is present with
  ``X`` ≥ 1; a frame without the track ends an episode) and ``X_episode_s`` (their mean
  duration in seconds, a run of k frames lasting k frame intervals; NaN without episodes).

The statistics over frames are :func:`aumaps.report.au_statistics`' (the per-video report
shows the same numbers); a video without any face has one row with ``face_id = -1``.
:func:`join_sheet` adds a participant/condition sheet's columns by video name.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..aus import column_name
from ..report import ACTIVE, au_statistics, runs
from ..results import NO_FACE
from ..video import VIDEO_EXTENSIONS
from .baseline import corrected_column

__all__ = ["csv_aus", "join_sheet", "result_csvs", "summarize", "summarize_video", "video_name"]

log = logging.getLogger(__name__)

_AU_COLUMN = re.compile(r"AU(\d\d)_r")
#: Per-AU statistics, in column order.
STATISTICS = ("mean", "median", "max", "std", "active", "episodes", "episode_s")


def _header(path: str | os.PathLike[str]) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return [name.strip() for name in next(csv.reader(fh), [])]


def csv_aus(path: str | os.PathLike[str]) -> tuple[int, ...]:
    """The AUs of a result CSV (its ``AUxx_r`` columns, in order)."""
    return tuple(int(m.group(1)) for name in _header(path) if (m := _AU_COLUMN.fullmatch(name)))


def result_csvs(results_dir: str | os.PathLike[str]) -> list[Path]:
    """The per-video CSVs under ``results_dir`` (recursively, sorted): the schema's columns
    without ``file``; hidden and temporary files are skipped."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: '{root}'")
    found = []
    for path in sorted(root.rglob("*.csv")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        header = set(_header(path))
        if {"frame", "face_id", "timestamp", "success"} <= header and "file" not in header and csv_aus(path):
            found.append(path)
    return found


def video_name(video: str) -> str:
    """A video's name for a participant sheet: the last part of ``a/b/clip`` (or of
    ``a/b/clip.mp4``, the CSV of a video whose stem was taken twice), without a video suffix."""
    name = video.rsplit("/", 1)[-1]
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in VIDEO_EXTENSIONS else name


def _episodes(table: pd.DataFrame, face_id: int, column: str, frames: pd.Index, interval: float) -> tuple[int, float]:
    """(episodes, mean duration in seconds) of ``column`` ≥ 1 for one track, over ``frames``."""
    face = table[(table["success"] == 1) & (table["face_id"] == face_id)]
    values = face.groupby("frame")[column].max().reindex(frames).to_numpy(dtype=float)
    spans = runs(np.nan_to_num(values, nan=-np.inf) >= ACTIVE)
    if not spans:
        return 0, float("nan")
    return len(spans), float(np.mean([stop - start for start, stop in spans])) * interval


def summarize_video(table: pd.DataFrame, aus: Sequence[int], video: str = "") -> pd.DataFrame:
    """The summary rows (see the module docstring) of one video's table (the CSV as read
    by pandas: ``frame``, ``timestamp``, ``face_id``, ``success``, ``AUxx_r`` and maybe
    ``AUxx_r_corr``)."""
    frames = pd.Index(np.sort(table["frame"].unique()))
    times = table.groupby("frame")["timestamp"].first().reindex(frames).to_numpy(dtype=float)
    steps = np.diff(times)
    interval = float(np.median(steps)) if len(steps) and np.isfinite(steps).any() else float("nan")
    columns = [column_name(a) for a in aus]
    columns += [corrected_column(a) for a in aus if corrected_column(a) in table.columns]
    per_column = {}
    for column in columns:  # au_statistics reads AUxx_r: give it each column under that name
        au = int(column[2:4])
        view = table[["frame", "timestamp", "face_id", "success", column]].rename(columns={column: column_name(au)})
        per_column[column] = au_statistics(view, [au]).set_index("face_id")
    faces = sorted(int(f) for f in table.loc[table["success"] == 1, "face_id"].unique())
    rows = []
    for face_id in faces or [NO_FACE]:
        row = {"video": video, "name": video_name(video), "face_id": face_id, "frames": len(frames),
               "frames_with_face": int(((table["face_id"] == face_id) & (table["success"] == 1)).sum())}
        for column in columns:
            stats = per_column[column]
            if face_id in stats.index:
                s = stats.loc[face_id]
                row |= {f"{column}_mean": s["mean"], f"{column}_median": s["median"], f"{column}_max": s["max"],
                        f"{column}_std": s["std"], f"{column}_active": s["active_pct"] / 100.0}
                row[f"{column}_episodes"], row[f"{column}_episode_s"] = _episodes(table, face_id, column, frames,
                                                                                interval)
            else:
                row |= {f"{column}_{name}": np.nan for name in STATISTICS}
                row[f"{column}_episodes"] = 0
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(
    results_dir: str | os.PathLike[str],
    by: str | os.PathLike[str] | pd.DataFrame | None = None,
    key: str = "video",
) -> pd.DataFrame:
    """One row per video and face track of the CSVs under ``results_dir`` (see the module
    docstring), sorted by video and face.

    Args:
        results_dir: the study's output folder (or any folder of aumaps video CSVs).
        by: a participant/condition sheet (CSV file or DataFrame) joined by video name
            (:func:`join_sheet`).
        key: the sheet's column naming the videos.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no video CSV in it, or a bad sheet.
    """
    root = Path(results_dir)
    paths = result_csvs(root)
    if not paths:
        raise ValueError(f"'{root}' holds no aumaps video CSV to summarise")
    parts = []
    for path in paths:
        aus = csv_aus(path)
        wanted = set(["frame", "timestamp", "face_id", "success"] + [column_name(a) for a in aus]
                     + [corrected_column(a) for a in aus])
        table = pd.read_csv(path, usecols=lambda c, wanted=wanted: c.strip() in wanted, skipinitialspace=True)
        table.columns = [c.strip() for c in table.columns]
        video = path.relative_to(root).with_suffix("").as_posix()
        parts.append(summarize_video(table, aus, video))
    summary = pd.concat(parts, ignore_index=True)
    return summary if by is None else join_sheet(summary, by, key)


def join_sheet(summary: pd.DataFrame, sheet: str | os.PathLike[str] | pd.DataFrame, key: str = "video") -> pd.DataFrame:
    """``summary`` with the columns of a participant/condition ``sheet`` (CSV, or a
    DataFrame), placed after ``name``.

    The sheet's ``key`` column names each video: by name (``clip``, or ``clip.mp4``: a video
    suffix is ignored), matched to the summary's ``name``; or, when some key holds a ``/``,
    by path within the study (``subject1/clip``), matched to ``video``. Each video may have
    one sheet row at most; videos without one get empty cells, and both kinds of misses are
    logged.

    Raises:
        ValueError: no ``key`` column, or a video named twice.
    """
    table = pd.read_csv(sheet, dtype=str, skipinitialspace=True) if not isinstance(sheet, pd.DataFrame) else sheet.copy()
    if key not in table.columns:
        raise ValueError(f"the sheet has no column {key!r} (its columns: {', '.join(map(str, table.columns))}); "
                         "name the column of video names with --key")
    keys = table[key].astype(str).str.strip()
    on = "video" if keys.str.contains("/").any() else "name"
    keys = keys.map(lambda k: k.removeprefix("./")) if on == "video" else keys
    keys = keys.map(lambda k: k.rsplit(".", 1)[0] if Path(k).suffix.lower() in VIDEO_EXTENSIONS else k)
    repeated = sorted(set(keys[keys.duplicated()]))
    if repeated:
        raise ValueError(f"the sheet names these videos more than once: {', '.join(repeated[:10])}")
    table = table.drop(columns=[key]).assign(_key=keys.to_numpy())
    missing = sorted(set(summary[on]) - set(keys))
    unused = sorted(set(keys) - set(summary[on]))
    if missing:
        log.warning("%d video(s) have no row in the sheet (e.g. %s)", len(missing), ", ".join(missing[:5]))
    if unused:
        log.warning("%d sheet row(s) match no video (e.g. %s)", len(unused), ", ".join(unused[:5]))
    if on == "name":
        shared = summary.drop_duplicates("video").groupby("name")["video"].count()
        if (shared > 1).any():
            log.warning("video names in several folders (e.g. %s) all get the sheet's row; key the sheet on the "
                        "path within the study (folder/name) to tell them apart", shared[shared > 1].index[0])
    joined = summary.merge(table, how="left", left_on=on, right_on="_key", suffixes=("", "_sheet"))
    joined = joined.drop(columns=["_key"])
    extra = [c for c in joined.columns if c not in summary.columns]
    place = list(summary.columns).index("name") + 1
    order = list(summary.columns[:place]) + extra + list(summary.columns[place:])
    return joined[order]
