"""Per-person baselines: each face track's neutral, estimated from the video itself.

People differ at rest: one face reads AU6 1.0 when neutral, the next 0.2, which blurs every
comparison between people. OpenFace's video mode corrects each person against their own
neutral; aumaps offers two ways to estimate it, both per face track (``face_id``) of a video
and both assuming the person is at rest in at least ``percentile`` % of the track's frames:

``scalar``
    per AU, the ``percentile``-th percentile ``b`` of the track's intensities; the corrected
    intensity is ``clip(I_t - b, 0, 5)``. A shift of each AU's series: it cannot change
    which frames of a video rank higher.
``map``
    per AU and map pixel (in the registered crop, so the same point of the face in every
    frame), the ``percentile``-th percentile ``N(x)`` of the track's AU maps (at most
    :data:`MAX_NEUTRAL_FRAMES` frames, evenly spread), floored at 0; the corrected intensity
    is the peak of what the frame shows beyond that neutral, ``clip(max_x (M_t(x) - N(x)),
    0, 5)``. Needs every frame's maps (kept, as float16, in a temporary file during the
    video), and can change rankings within a video.

**A neutral needs frames.** A low percentile of a few frames is their minimum: a 3-frame
track's 5th percentile is its lowest value, and subtracting it takes every frame's
expression down with it. A track (or a participant, below) with fewer than
:func:`min_frames` frames (:data:`DEFAULT_MIN_FRAMES`, more where the percentile is so low
that the minimum would still be taken) gets no correction: its ``AUxx_r_corr`` cells stay
empty and the estimate says why (``"corrected": false``, ``"reason"``).

**Per participant.** :func:`participant_neutrals` pools every face row of all of a
participant's videos (a participant sheet names them: the sheet ``aumaps summarize --by``
reads) into one neutral per participant, the same for each of their videos: the calibration
across a person's sessions that per-video baselines cannot give (a video in which someone
never rests). It assumes each video shows that participant alone.

The default, :data:`DEFAULT_FORM`, is the form that measured better on synthetic videos with
known per-person offsets (``benchmarks/bench_baseline.py``; ``docs/study.md`` has the
figures). Corrected intensities go into the CSV beside the raw ones, as ``AUxx_r_corr``
columns after the schema's (:func:`correct_csv`); the raw columns stay as they are.

Shapes: T frames of one track, A AUs, H×W maps.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from ..aus import MAX_INTENSITY, column_name
from ..results import DECIMALS, FaceResult

log = logging.getLogger(__name__)

__all__ = [
    "BASELINE_FORMS",
    "DEFAULT_FORM",
    "DEFAULT_MIN_FRAMES",
    "DEFAULT_PERCENTILE",
    "MapStore",
    "correct_csv",
    "corrected_column",
    "min_frames",
    "participant_neutrals",
    "neutral_map",
    "scalar_neutral",
    "subtract_map",
    "subtract_scalar",
]

#: The ways of estimating a neutral (see the module docstring).
BASELINE_FORMS = ("scalar", "map")
#: The form ``--baseline`` uses when none is named: the better one in ``bench_baseline.py``.
DEFAULT_FORM = "scalar"
#: The low percentile of a track's values taken as its neutral.
DEFAULT_PERCENTILE = 5.0
#: The map form estimates each track's neutral map from at most this many frames.
MAX_NEUTRAL_FRAMES = 1000
#: The fewest frames a neutral is estimated from (1 s at 30 frames/s; see :func:`min_frames`).
DEFAULT_MIN_FRAMES = 30


def min_frames(percentile: float = DEFAULT_PERCENTILE, least: int = DEFAULT_MIN_FRAMES) -> int:
    """The fewest frames a neutral at ``percentile`` is estimated from: ``least``, and more
    where the percentile would otherwise fall on the lowest frame or next to it (at least
    ``1 + 100 / percentile`` frames: the percentile then lies at or above the second-lowest
    value; 21 at 5 %). ``percentile`` 0 asks for the minimum itself: ``least``."""
    if least < 1:
        raise ValueError(f"the least number of frames for a neutral must be at least 1, got {least}")
    return int(least) if percentile <= 0 else max(int(least), math.ceil(1 + 100.0 / percentile))


def corrected_column(au: int) -> str:
    """The CSV column of an AU's corrected intensity: ``AU06_r_corr``."""
    return f"{column_name(au)}_corr"


def scalar_neutral(intensities: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> np.ndarray:
    """``(A,)`` each AU's neutral: the ``percentile``-th percentile of the ``(T, A)`` intensities."""
    return np.percentile(np.asarray(intensities, dtype=np.float64), percentile, axis=0)


def subtract_scalar(intensities: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """``(T, A)`` intensities above the ``(A,)`` neutral, clipped to [0, 5]."""
    return np.clip(np.asarray(intensities, dtype=np.float64) - neutral, 0.0, MAX_INTENSITY)


def neutral_map(maps: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> np.ndarray:
    """``(A, H, W)`` the neutral maps: per pixel, the ``percentile``-th percentile of the
    ``(T, A, H, W)`` maps, floored at 0 (so a correction never adds)."""
    return np.maximum(np.percentile(np.asarray(maps, dtype=np.float32), percentile, axis=0), 0.0)


def subtract_map(maps: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """``(T, A)`` the peak of each ``(T, A, H, W)`` map above the ``(A, H, W)`` neutral,
    clipped to [0, 5]."""
    maps = np.asarray(maps, dtype=np.float32)
    above = (maps - neutral[None]).reshape(len(maps), maps.shape[1], -1).max(axis=-1)
    return np.clip(above.astype(np.float64), 0.0, MAX_INTENSITY)


class MapStore:
    """The AU maps of a video's faces, in the order of the CSV's ``success = 1`` rows, kept
    as float16 in an anonymous temporary file (gone with the process, whatever ends it).

    Args:
        folder: where the temporary file lives (the output folder: the disk that has room).
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
        self._file = tempfile.TemporaryFile(dir=folder)
        self.face_ids: list[int] = []
        self.shape: tuple[int, ...] | None = None

    def add(self, faces: Sequence[FaceResult]) -> None:
        """Append the ``(A, H, W)`` maps of ``faces``."""
        for face in faces:
            maps = np.asarray(face.heatmaps, dtype=np.float16)
            if self.shape is None:
                self.shape = maps.shape
            elif maps.shape != self.shape:
                raise ValueError(f"maps of shape {maps.shape} after {self.shape}")
            self._file.write(np.ascontiguousarray(maps).tobytes())
            self.face_ids.append(int(face.face_id))

    def __len__(self) -> int:
        return len(self.face_ids)

    def maps(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), A, H, W)`` float32 maps of the stored faces ``rows``."""
        self._file.flush()
        stored = np.memmap(self._file, dtype=np.float16, mode="r", shape=(len(self), *self.shape))
        return np.asarray(stored[np.asarray(rows)], dtype=np.float32)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _map_correction(
    store: MapStore, rows: np.ndarray, percentile: float, block: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(A, H, W)`` neutral of the stored faces ``rows`` (one track) and their
    ``(len(rows), A)`` corrected intensities."""
    chosen = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), MAX_NEUTRAL_FRAMES)).round().astype(int))
    neutral = neutral_map(store.maps(rows[chosen]), percentile)
    corrected = [subtract_map(store.maps(rows[start : start + block]), neutral) for start in range(0, len(rows), block)]
    return neutral, np.concatenate(corrected)


def correct_csv(
    csv_in: str | os.PathLike[str],
    csv_out: str | os.PathLike[str],
    aus: Sequence[int],
    form: str = DEFAULT_FORM,
    percentile: float = DEFAULT_PERCENTILE,
    maps: MapStore | None = None,
    least_frames: int = DEFAULT_MIN_FRAMES,
) -> dict[str, dict[str, Any]]:
    """Copy a video's CSV adding one ``AUxx_r_corr`` column per AU after the schema's, the
    intensity above the face track's neutral (empty where ``success = 0``, and for a track
    too short for a neutral: :func:`min_frames`). The schema's columns are copied byte for
    byte.

    Args:
        csv_in, csv_out: the video's CSV, and where to write the copy (may not be the same).
        aus: the CSV's AUs.
        form: ``"scalar"`` or ``"map"`` (see the module docstring).
        percentile: the low percentile taken as the neutral.
        maps: the ``"map"`` form: the faces' maps in the order of the ``success = 1`` rows.
        least_frames: see :func:`min_frames`.

    Returns:
        Per face track (its ``face_id`` as a string): ``frames`` (frames with the face),
        ``corrected`` (whether it was long enough) and the neutral: ``{"AU06": b, ...}`` for
        the scalar form; for the map form the peak of each AU's neutral map
        (``neutral_peak``) and the frames it was estimated from. A track too short has
        ``reason`` instead of a neutral.
    """
    if form not in BASELINE_FORMS:
        raise ValueError(f"baseline form must be one of {', '.join(BASELINE_FORMS)}, got {form!r}")
    if form == "map" and maps is None:
        raise ValueError("the map baseline needs the faces' maps (a MapStore)")
    if not 0 <= percentile <= 100:
        raise ValueError(f"the baseline percentile must lie in [0, 100], got {percentile}")
    with open(csv_in, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    index = {name: k for k, name in enumerate(header)}
    au_cols = [index[column_name(a)] for a in aus]
    faces = [r for r, row in enumerate(rows) if row[index["success"]] == "1"]
    if form == "map" and len(faces) != len(maps):
        raise ValueError(f"{len(maps)} stored maps for {len(faces)} face rows in {csv_in}")
    tracks: dict[int, list[int]] = {}
    for k, r in enumerate(faces):
        tracks.setdefault(int(rows[r][index["face_id"]]), []).append(k)
    corrected = np.full((len(faces), len(aus)), np.nan)
    estimates: dict[str, dict[str, Any]] = {}
    needed = min_frames(percentile, least_frames)
    for face_id, members in sorted(tracks.items()):
        members = np.asarray(members)
        entry: dict[str, Any] = {"frames": len(members), "corrected": len(members) >= needed}
        if not entry["corrected"]:
            entry["reason"] = (
                f"{len(members)} frames, fewer than the {needed} a neutral at the "
                f"{percentile:g}th percentile needs: not corrected"
            )
            log.info("%s: face track %d: %s", csv_in, face_id, entry["reason"])
        elif form == "scalar":
            values = np.array([[float(rows[faces[k]][c]) for c in au_cols] for k in members])
            neutral = scalar_neutral(values, percentile)
            corrected[members] = subtract_scalar(values, neutral)
            entry |= {f"AU{a:02d}": round(float(b), DECIMALS) for a, b in zip(aus, neutral)}
        else:
            neutral, corrected[members] = _map_correction(maps, members, percentile)
            entry["neutral_frames"] = min(len(members), MAX_NEUTRAL_FRAMES)
            entry["neutral_peak"] = {f"AU{a:02d}": round(float(n.max()), DECIMALS) for a, n in zip(aus, neutral)}
        estimates[str(face_id)] = entry
    extra = [""] * len(aus)
    by_row = dict(zip(faces, corrected))
    with open(csv_out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header + [corrected_column(a) for a in aus])
        for r, row in enumerate(rows):
            values = by_row.get(r)
            cells = extra if values is None else [round(float(v), DECIMALS) if np.isfinite(v) else "" for v in values]
            writer.writerow(row + cells)
    return estimates


def participant_neutrals(
    tables: Mapping[str, Any],
    participants: Mapping[str, str],
    aus: Sequence[int],
    percentile: float = DEFAULT_PERCENTILE,
    least_frames: int = DEFAULT_MIN_FRAMES,
) -> dict[str, dict[str, Any]]:
    """One scalar neutral per participant, from the face rows of all their videos together.

    Args:
        tables: per video, its rows (a DataFrame with ``success`` and the ``AUxx_r`` columns,
            as :func:`aumaps.study.summarize` reads a CSV).
        participants: per video, its participant (videos not named here are left out).
        aus: the AUs.
        percentile, least_frames: as for a track (:func:`scalar_neutral`, :func:`min_frames`).

    Returns:
        Per participant: ``videos`` (how many), ``frames`` (face rows pooled), ``corrected``
        (enough frames for a neutral) and ``neutral`` (``(A,)`` array) or ``reason``.
    """
    needed = min_frames(percentile, least_frames)
    pooled: dict[str, list[np.ndarray]] = {}
    for video, participant in participants.items():
        table = tables.get(video)
        if table is None:
            continue
        faces = table[table["success"] == 1]
        pooled.setdefault(participant, []).append(faces[[column_name(a) for a in aus]].to_numpy(dtype=np.float64))
    neutrals: dict[str, dict[str, Any]] = {}
    for participant, parts in sorted(pooled.items()):
        values = np.concatenate(parts) if parts else np.empty((0, len(aus)))
        values = values[np.isfinite(values).all(axis=1)]
        entry: dict[str, Any] = {"videos": len(parts), "frames": len(values), "corrected": len(values) >= needed}
        if entry["corrected"]:
            entry["neutral"] = scalar_neutral(values, percentile)
        else:
            entry["reason"] = (
                f"{len(values)} face frames in {len(parts)} video(s), fewer than the {needed} a "
                f"neutral at the {percentile:g}th percentile needs: not corrected"
            )
        neutrals[participant] = entry
    return neutrals
