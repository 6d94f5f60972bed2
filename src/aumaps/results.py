"""What aumaps says about faces: the result types and the one output schema.

A :class:`FaceResult` is one face (intensities, AU maps, where each AU peaks, landmarks); a
:class:`FrameResult` is one image or video frame with its faces. Images, videos, webcams and
the browser app all produce them, and all write them in **one schema**, OpenFace 2.2's
(``FeatureExtraction``) column names in its order for the columns aumaps has, so that scripts
written for OpenFace read aumaps' CSVs unchanged:

``[file,] frame, face_id, timestamp, confidence, success, pose_Tx, pose_Ty, pose_Tz, pose_Rx,
pose_Ry, pose_Rz, x_0 … x_67, y_0 … y_67, AUxx_r …, AUxx_c …, AUxx_x, AUxx_y …, box_x0, box_y0,
box_x1, box_y1, detector_score``

* ``file``: images only, the image's path (first column).
* ``frame``: 1-based frame number (images: the image's position in the run), as OpenFace.
* ``face_id``: the face's track id in videos (stable while tracked), its index in an image
  (face 0 is the face the BMVC 2018 release would analyse); ``-1`` on a row without a face.
* ``timestamp``: seconds (a video file's frames: their presentation times from the container; frame
  position / fps for folders of frames; wall clock for webcams; 0 for images).
* ``confidence``: OpenFace's meaning, how far the row can be trusted, in [0, 1], on every
  row (tracked frames too): the calibrated probability that the landmarks lie within 10 % of
  the inter-ocular distance of where they belong (:mod:`aumaps.confidence`); 0 on a row
  without a face, as OpenFace writes it.
* ``success``: 1 when a face was analysed; a frame or image without a face keeps one row
  with ``success = 0``, ``confidence = 0`` and empty cells, so time series stay aligned.
  Never made-up numbers.
* ``pose_Tx, pose_Ty, pose_Tz``: the head's position relative to the camera in millimetres;
  ``pose_Rx, pose_Ry, pose_Rz``: its rotation in radians (pitch, yaw, roll), OpenFace's
  conventions and default camera (:mod:`aumaps.pose`). Empty where the landmarks give no pose.
  OpenFace's gaze, eye-landmark, 3D-landmark and shape-parameter columns, which come before
  and after the pose in its files, are absent.
* ``x_i, y_i``: the 68 landmarks in image pixels.
* ``AUxx_r``: intensity, 0–5 (each AU map's maximum, clamped).
* ``AUxx_c``: presence, 1 when ``AUxx_r`` ≥ :data:`OCCURRENCE_THRESHOLD` (1.0, FACS level A),
  else 0. (OpenFace predicts presence with separate classifiers; aumaps derives it from the
  intensity.)
* ``AUxx_x, AUxx_y``: where the AU's map peaks, in image pixels (aumaps' own columns).
* ``box_*``: the face box the landmarks were placed in (aumaps' own columns).
* ``detector_score``: the face detector's raw score at the track's latest detection (its
  scale is the detector's; empty when the landmarks were given).

Every number is rounded to :data:`DECIMALS` decimals. :func:`results_frame` gives the same
columns as a pandas DataFrame (NaN for empty cells). Text cells that a spreadsheet would run
as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: a file
named ``=HYPERLINK(...).jpg``) are written with a ``'`` before them, in every CSV aumaps writes
(:func:`neutralise_cell`); numbers stay numbers.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .aus import column_name
from .geometry import NUM_LANDMARKS
from .pose import POSE_COLUMNS

__all__ = [
    "DECIMALS",
    "OCCURRENCE_THRESHOLD",
    "FaceResult",
    "FrameResult",
    "ResultWriter",
    "csv_columns",
    "neutralise_cell",
    "neutralise_table",
    "restore_cell",
    "restore_table",
    "result_rows",
    "results_frame",
    "write_table",
]

#: An AU counts as present (``AUxx_c = 1``) from this intensity on: FACS level A.
OCCURRENCE_THRESHOLD = 1.0
#: Decimals of every number written.
DECIMALS = 4
#: ``face_id`` of a row without a face.
NO_FACE = -1


@dataclass
class FaceResult:
    """Everything aumaps knows about one face.

    Attributes:
        face_id: the face's index in its image (the detector's order), or its track id in a
            video.
        aus: AU numbers, the order of ``intensities`` and ``heatmaps``.
        intensities: ``(A,)`` intensities in [0, 5].
        heatmaps: ``(A, 64, 64)`` float32 network output in the crop frame.
        peaks: ``(A, C, 2)`` image (x, y) of each AU's heatmap peaks, strongest first (NaN
            where the map has fewer peaks above the codec's threshold).
        argmax: ``(A, 2)`` image (x, y) of each map's maximum (NaN for an empty map).
        landmarks: ``(68, 2)`` image landmarks used for registration.
        box: ``(4,)`` face box x0, y0, x1, y1 (image pixels).
        confidence: how far the face's row can be trusted, in [0, 1] (:mod:`aumaps.confidence`;
            NaN where it was not assessed).
        matrix: ``(2, 3)`` image→crop affine.
        crop: ``(S, S, 3)`` uint8 RGB registered crop the network saw.
        detector_score: the face detector's raw score (NaN when the landmarks were given).
        pose: ``(6,)`` head pose ``Tx, Ty, Tz`` (mm), ``Rx, Ry, Rz`` (radians), as the CSV's
            ``pose_*`` columns (:mod:`aumaps.pose`; NaN where unknown).
    """

    face_id: int
    aus: tuple[int, ...]
    intensities: np.ndarray
    heatmaps: np.ndarray
    peaks: np.ndarray
    argmax: np.ndarray
    landmarks: np.ndarray
    box: np.ndarray
    confidence: float
    matrix: np.ndarray
    crop: np.ndarray = field(repr=False)
    detector_score: float = float("nan")
    pose: np.ndarray = field(default_factory=lambda: np.full(6, np.nan))

    def intensities_dict(self) -> dict[int, float]:
        """``{AU number: intensity}``."""
        return {au: float(v) for au, v in zip(self.aus, self.intensities)}

    @property
    def occurrences(self) -> np.ndarray:
        """``(A,)`` bool: intensity ≥ :data:`OCCURRENCE_THRESHOLD` (the CSV's ``AUxx_c``)."""
        return np.asarray(self.intensities) >= OCCURRENCE_THRESHOLD


@dataclass
class FrameResult:
    """The faces of one image or video frame.

    Attributes:
        index: 0-based position in the source (the CSV's ``frame`` is ``index + 1``).
        timestamp: seconds from the start (0 for images).
        faces: one :class:`FaceResult` per face; empty when there is none.
        image: the frame, ``(H, W, 3)`` uint8 RGB (``None`` if it could not be read).
        error: why there is no image.
        path: the image file, for images (the CSV's ``file``).
    """

    index: int
    timestamp: float
    faces: list[FaceResult]
    image: np.ndarray | None = field(default=None, repr=False)
    error: str | None = None
    path: Path | None = None


def csv_columns(aus: Sequence[int], file_column: bool = False) -> list[str]:
    """The schema's header for ``aus`` (see the module docstring); ``file_column`` for images."""
    cols = ["file"] if file_column else []
    cols += ["frame", "face_id", "timestamp", "confidence", "success"]
    cols += list(POSE_COLUMNS)
    cols += [f"x_{i}" for i in range(NUM_LANDMARKS)] + [f"y_{i}" for i in range(NUM_LANDMARKS)]
    cols += [column_name(a) for a in aus]
    cols += [f"AU{a:02d}_c" for a in aus]
    cols += [f"AU{a:02d}_{xy}" for a in aus for xy in ("x", "y")]
    return cols + ["box_x0", "box_y0", "box_x1", "box_y1", "detector_score"]


#: How a formula starts, for a spreadsheet (OWASP, "CSV Injection"): what
#: :func:`neutralise_cell` defuses.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as it is: text starting with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return gets a ``'`` before it (OWASP's advice against CSV injection),
    unless the text is a plain number (``-0.5``, ``+3``, ``-1e-3``); numbers, and any other
    value, are returned unchanged. Every CSV writer of aumaps passes its cells through this.

    Text made of ``'`` before such a start (``'=x``, ``''-y``) gets one more ``'``, so that
    :func:`restore_cell` gives every text back exactly (a file really named ``'=x.jpg``
    too)."""
    if isinstance(value, str) and _formula(value.lstrip("'")):
        return "'" + value
    return value


def restore_cell(value: Any) -> Any:
    """The value :func:`neutralise_cell` was given, from the cell it wrote: the ``'`` it added
    is removed; any other value is returned unchanged (``restore_cell(neutralise_cell(v)) ==
    v`` for every ``v``). Readers of the CSVs aumaps writes and reads back (manifests, the
    crop cache's ``meta.csv``, participant sheets) pass text cells through this."""
    if isinstance(value, str) and value.startswith("'") and _formula(value.lstrip("'")):
        return value[1:]
    return value


def _formula(text: str) -> bool:
    return text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text)


def neutralise_table(table: pd.DataFrame, names: bool = True) -> pd.DataFrame:
    """``table`` with :func:`neutralise_cell` applied to its text cells and (``names``) its
    column names; number columns are left as they are (a copy; ``table`` is not changed)."""
    return _map_text(table, neutralise_cell, FORMULA_STARTS + ("'",), names)


def restore_table(table: pd.DataFrame, names: bool = True) -> pd.DataFrame:
    """``table`` (a CSV aumaps wrote, as read by pandas) with :func:`restore_cell` applied to
    its text cells and (``names``) its column names (a copy)."""
    return _map_text(table, restore_cell, ("'",), names)


def _map_text(table: pd.DataFrame, function: Any, starts: tuple[str, ...], names: bool) -> pd.DataFrame:
    """``function`` applied to the text cells that start with one of ``starts`` (the only
    ones it changes), column by column, and to the column names."""
    out = table.copy()
    for k in range(table.shape[1]):
        column = table.iloc[:, k]
        if not (column.dtype == object or isinstance(column.dtype, pd.StringDtype)):
            continue  # numbers stay numbers
        try:
            hits = np.flatnonzero(column.str.startswith(starts, na=False).to_numpy(dtype=bool))
        except AttributeError:  # an object column without text
            continue
        if len(hits):
            values = column.to_numpy(dtype=object, copy=True)
            values[hits] = [function(v) for v in values[hits]]
            out.isetitem(k, pd.Series(values, index=column.index, dtype=column.dtype))
    if names:
        out.columns = [function(name) for name in table.columns]
    return out


def write_table(table: pd.DataFrame, path: str | os.PathLike[str], **options: Any) -> Path:
    """Write ``table`` to the CSV ``path`` atomically (:mod:`aumaps.atomic`), its text cells
    and column names neutralised (:func:`neutralise_table`); ``options`` go to
    :meth:`pandas.DataFrame.to_csv` (``index=False`` unless given). Returns the path."""
    with atomic_path(path) as temporary:
        neutralise_table(table).to_csv(temporary, **({"index": False} | options))
    return Path(path)


def _number(value: float) -> float:
    value = float(value)
    return round(value, DECIMALS) if np.isfinite(value) else float("nan")


def result_rows(result: FrameResult, aus: Sequence[int], file_column: bool = False) -> list[dict[str, Any]]:
    """Rows of one frame or image: one per face, or one ``success = 0`` row without a face.

    Values are numbers (NaN where unknown), rounded once to :data:`DECIMALS`.
    """
    base: dict[str, Any] = {"file": str(result.path)} if file_column else {}
    base |= {"frame": result.index + 1, "timestamp": _number(result.timestamp)}
    if not result.faces:
        return [{**base, "face_id": NO_FACE, "confidence": 0.0, "success": 0}]
    rows = []
    for face in result.faces:
        row = {**base, "face_id": int(face.face_id), "confidence": _number(face.confidence), "success": 1}
        row |= dict(zip(POSE_COLUMNS, map(_number, face.pose), strict=True))
        row |= {f"x_{i}": _number(v) for i, v in enumerate(face.landmarks[:, 0])}
        row |= {f"y_{i}": _number(v) for i, v in enumerate(face.landmarks[:, 1])}
        row |= {column_name(a): _number(v) for a, v in zip(aus, face.intensities, strict=True)}
        row |= {f"AU{a:02d}_c": int(c) for a, c in zip(aus, face.occurrences, strict=True)}
        for a, (x, y) in zip(aus, face.argmax, strict=True):
            row[f"AU{a:02d}_x"], row[f"AU{a:02d}_y"] = _number(x), _number(y)
        row |= dict(zip(("box_x0", "box_y0", "box_x1", "box_y1"), map(_number, face.box), strict=True))
        row["detector_score"] = _number(face.detector_score)
        rows.append(row)
    return rows


def results_frame(results: Iterable[FrameResult], aus: Sequence[int], file_column: bool = False) -> pd.DataFrame:
    """The CSV's table as a DataFrame: same columns, NaN for empty cells."""
    rows = [row for result in results for row in result_rows(result, aus, file_column)]
    table = pd.DataFrame(rows, columns=csv_columns(aus, file_column))
    for name in ("frame", "face_id", "success"):
        table[name] = table[name].astype(int)
    return table


class ResultWriter:
    """Writes :class:`FrameResult` rows in the schema to a CSV, flushed after every result, so
    the rows written survive an interruption. Use as a context manager.

    Args:
        path: the CSV (parent folders are created); or an open text file.
        aus: the AU columns, in order.
        file_column: images: add the ``file`` column.
    """

    def __init__(self, path: str | os.PathLike[str] | IO[str], aus: Sequence[int], file_column: bool = False) -> None:
        self.aus = tuple(aus)
        self.file_column = file_column
        if hasattr(path, "write"):
            self.path, self._file, self._owned = None, path, False
        else:
            self.path = Path(path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file, self._owned = open(self.path, "w", newline=""), True
        self._writer = csv.DictWriter(self._file, fieldnames=csv_columns(self.aus, file_column), restval="")
        self._writer.writeheader()
        self.rows = 0

    def write(self, result: FrameResult) -> None:
        """Append the rows of ``result`` and flush."""
        rows = result_rows(result, self.aus, self.file_column)
        self._writer.writerows(
            {k: "" if isinstance(v, float) and v != v else neutralise_cell(v) for k, v in row.items()} for row in rows
        )
        self._file.flush()
        self.rows += len(rows)

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
