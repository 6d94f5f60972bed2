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

**Per-participant baselines** (``baseline_by``: a column of the sheet, e.g. ``participant``):
one neutral per participant from all of their videos' face rows
(:func:`aumaps.study.baseline.participant_neutrals`); every video of a participant is
corrected against it (``AUxx_r_corr = clip(AUxx_r - neutral, 0, 5)``, replacing per-track
corrected columns the CSVs may hold), and the summary says which neutral each row got:
``baseline`` (the participant), ``baseline_videos``, ``baseline_frames`` and ``AUxx_neutral``
(empty, with no corrected statistics, where the participant has too few frames).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..aus import MAX_INTENSITY, column_name
from ..report import ACTIVE, au_statistics, runs
from ..results import NO_FACE, restore_table
from ..video import VIDEO_EXTENSIONS
from .baseline import DEFAULT_MIN_FRAMES, DEFAULT_PERCENTILE, corrected_column, participant_neutrals

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
        with warnings.catch_warnings():  # a track left uncorrected (too short) has only empty cells: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            per_column[column] = au_statistics(view, [au]).set_index("face_id")
    faces = sorted(int(f) for f in table.loc[table["success"] == 1, "face_id"].unique())
    rows = []
    for face_id in faces or [NO_FACE]:
        row = {
            "video": video,
            "name": video_name(video),
            "face_id": face_id,
            "frames": len(frames),
            "frames_with_face": int(((table["face_id"] == face_id) & (table["success"] == 1)).sum()),
        }
        for column in columns:
            stats = per_column[column]
            if face_id in stats.index:
                s = stats.loc[face_id]
                row |= {
                    f"{column}_mean": s["mean"],
                    f"{column}_median": s["median"],
                    f"{column}_max": s["max"],
                    f"{column}_std": s["std"],
                    f"{column}_active": s["active_pct"] / 100.0,
                }
                row[f"{column}_episodes"], row[f"{column}_episode_s"] = _episodes(
                    table, face_id, column, frames, interval
                )
            else:
                row |= {f"{column}_{name}": np.nan for name in STATISTICS}
                row[f"{column}_episodes"] = 0
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(
    results_dir: str | os.PathLike[str],
    by: str | os.PathLike[str] | pd.DataFrame | None = None,
    key: str = "video",
    baseline_by: str | None = None,
    percentile: float = DEFAULT_PERCENTILE,
    least_frames: int = DEFAULT_MIN_FRAMES,
) -> pd.DataFrame:
    """One row per video and face track of the CSVs under ``results_dir`` (see the module
    docstring), sorted by video and face.

    Args:
        results_dir: the study's output folder (or any folder of aumaps video CSVs).
        by: a participant/condition sheet (CSV file or DataFrame) joined by video name
            (:func:`join_sheet`).
        key: the sheet's column naming the videos.
        baseline_by: the sheet's column naming each video's participant: correct every
            video against its participant's neutral (see the module docstring).
        percentile, least_frames: the participant neutral's percentile and the fewest
            frames it is estimated from (:func:`aumaps.study.baseline.min_frames`).

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no video CSV in it, a bad sheet, ``baseline_by`` without a sheet or
            not one of its columns, or CSVs of different AUs under one participant baseline.
    """
    root = Path(results_dir)
    paths = result_csvs(root)
    if not paths:
        raise ValueError(f"'{root}' holds no aumaps video CSV to summarise")
    tables: dict[str, tuple[pd.DataFrame, tuple[int, ...]]] = {}
    for path in paths:
        aus = csv_aus(path)
        wanted = set(
            ["frame", "timestamp", "face_id", "success"]
            + [column_name(a) for a in aus]
            + [corrected_column(a) for a in aus]
        )
        table = pd.read_csv(path, usecols=lambda c, wanted=wanted: c.strip() in wanted, skipinitialspace=True)
        table.columns = [c.strip() for c in table.columns]
        tables[path.relative_to(root).with_suffix("").as_posix()] = (table, aus)
    sheet = None if by is None else _read_sheet(by)
    neutrals: dict[str, dict] = {}
    participant_of: dict[str, str] = {}
    if baseline_by is not None:
        if sheet is None:
            raise ValueError(
                "a per-participant baseline needs the participant sheet (--by) that names each video's participant"
            )
        participant_of = _sheet_column(sheet, key, baseline_by, list(tables))
        aus_sets = {tables[v][1] for v in participant_of}
        if len(aus_sets) > 1:
            raise ValueError(
                f"the videos hold different AUs ({sorted(aus_sets)}): one participant baseline needs one model's CSVs"
            )
        aus = next(iter(aus_sets), ())
        neutrals = participant_neutrals(
            {v: t for v, (t, _) in tables.items()}, participant_of, aus, percentile, least_frames
        )
        for participant, entry in neutrals.items():
            if not entry["corrected"]:
                log.warning("participant %s: %s", participant, entry["reason"])
    parts = []
    for video, (table, aus) in tables.items():
        if baseline_by is not None:
            entry = neutrals.get(participant_of.get(video, ""), None)
            table = _corrected(table, aus, entry["neutral"] if entry and entry["corrected"] else None)
        part = summarize_video(table, aus, video)
        if baseline_by is not None:
            entry = neutrals.get(participant_of.get(video, ""), {})
            columns = {
                "baseline": participant_of.get(video),
                "baseline_videos": entry.get("videos", 0),
                "baseline_frames": entry.get("frames", 0),
            }
            neutral = entry.get("neutral")
            columns |= {
                f"{column_name(a)}_neutral": (round(float(neutral[k]), 4) if neutral is not None else np.nan)
                for k, a in enumerate(aus)
            }
            place = list(part.columns).index("face_id") + 1
            for offset, (name, value) in enumerate(columns.items()):
                part.insert(place + offset, name, value)
        parts.append(part)
    summary = pd.concat(parts, ignore_index=True)
    return summary if sheet is None else join_sheet(summary, sheet, key)


def _corrected(table: pd.DataFrame, aus: Sequence[int], neutral: np.ndarray | None) -> pd.DataFrame:
    """``table`` with its ``AUxx_r_corr`` columns made against ``neutral`` (``(A,)``; None:
    empty), for the face rows."""
    table = table.copy()
    faces = table["success"] == 1
    for k, au in enumerate(aus):
        values = np.full(len(table), np.nan)
        if neutral is not None:
            raw = table.loc[faces, column_name(au)].to_numpy(dtype=float)
            values[faces.to_numpy()] = np.clip(raw - neutral[k], 0.0, MAX_INTENSITY)
        table[corrected_column(au)] = values
    return table


def _read_sheet(sheet: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(sheet, pd.DataFrame):
        return sheet.copy()
    return restore_table(pd.read_csv(sheet, dtype=str, skipinitialspace=True))  # a sheet aumaps wrote reads as it was


def _sheet_keys(table: pd.DataFrame, key: str) -> tuple[pd.Series, str]:
    """The sheet's video keys as the summary writes them, and the summary column they match
    (``name``, or ``video`` when some key holds a ``/``).

    Raises:
        ValueError: no ``key`` column, or a video named twice.
    """
    if key not in table.columns:
        raise ValueError(
            f"the sheet has no column {key!r} (its columns: {', '.join(map(str, table.columns))}); "
            "name the column of video names with --key"
        )
    keys = table[key].astype(str).str.strip()
    on = "video" if keys.str.contains("/").any() else "name"
    keys = keys.map(lambda k: k.removeprefix("./")) if on == "video" else keys
    keys = keys.map(lambda k: k.rsplit(".", 1)[0] if Path(k).suffix.lower() in VIDEO_EXTENSIONS else k)
    repeated = sorted(set(keys[keys.duplicated()]))
    if repeated:
        raise ValueError(f"the sheet names these videos more than once: {', '.join(repeated[:10])}")
    return keys, on


def _sheet_column(sheet: pd.DataFrame, key: str, column: str, videos: Sequence[str]) -> dict[str, str]:
    """Per video (its path within the study, without ``.csv``), the sheet's ``column``
    (videos without a sheet row, or an empty cell, are left out and logged).

    Raises:
        ValueError: no such column, or a bad key column (:func:`_sheet_keys`).
    """
    if column not in sheet.columns:
        raise ValueError(f"the sheet has no column {column!r} (its columns: {', '.join(map(str, sheet.columns))})")
    keys, on = _sheet_keys(sheet, key)
    values = dict(zip(keys, sheet[column]))
    found = {}
    for video in videos:
        value = values.get(video if on == "video" else video_name(video))
        if value is not None and isinstance(value, str) and value.strip():
            found[video] = value.strip()
    left = sorted(set(videos) - set(found))
    if left:
        log.warning(
            "%d video(s) have no %s in the sheet, so no participant baseline (e.g. %s)",
            len(left),
            column,
            ", ".join(left[:5]),
        )
    return found


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
    table = _read_sheet(sheet)
    keys, on = _sheet_keys(table, key)
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
            log.warning(
                "video names in several folders (e.g. %s) all get the sheet's row; key the sheet on the "
                "path within the study (folder/name) to tell them apart",
                shared[shared > 1].index[0],
            )
    joined = summary.merge(table, how="left", left_on=on, right_on="_key", suffixes=("", "_sheet"))
    joined = joined.drop(columns=["_key"])
    extra = [c for c in joined.columns if c not in summary.columns]
    place = list(summary.columns).index("name") + 1
    order = list(summary.columns[:place]) + extra + list(summary.columns[place:])
    return joined[order]
