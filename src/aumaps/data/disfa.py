"""DISFA as distributed → an aumaps manifest of video frames.

The layout read (``ROOT`` is the folder the data set was unpacked into)::

    ROOT/Videos_LeftCamera/LeftVideoSN001_comp.avi     one video per subject and camera
    ROOT/Videos_RightCamera/RightVideoSN001_comp.avi
    ROOT/ActionUnit_Labels/SN001/SN001_au1.txt          rows "frame,intensity", frames from 1

Every frame becomes a manifest row ``ROOT/Videos_LeftCamera/LeftVideoSN001_comp.avi#i``
(``i`` 0-based: label frame ``i + 1``), which the crop cache decodes in one pass per video.
The 12 AUs are :data:`DISFA_AUS`. Some subjects' label files and videos differ in length by
a frame or so: the rows are the frames both have (the shorter of the two), and the frames
dropped are reported. A missing label file masks its AU (NaN) for that subject; a missing
or unreadable video drops the subject; both are reported, as are out-of-range and duplicated
label rows (masked), with file and line.

**Folds.** DISFA is usually evaluated 3-fold subject-independently. ``folds="standard"``
uses :data:`DISFA_FOLDS`, the partition used by JAA-Net (Shao et al., ECCV 2018) and the
works that follow it (the ``part1``/``part2``/``part3`` subject lists of their data scripts,
e.g. ME-GraphAU's; the same 27 subjects, 9 per fold);
``folds="kfold"`` deals subjects into 3 folds with :func:`~aumaps.data.manifest.subject_kfold`;
a CSV file of ``subject,fold`` rows gives any other. The manifest gets a ``fold`` column
(1–3); train on ``fold!=k`` and test on ``fold=k`` (:meth:`~aumaps.data.cache.CropCache.indices`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..aus import column_name
from .labels import Problems, attach_subject_column, read_label_file, read_subject_table
from .manifest import ManifestError, subject_fold_numbers

__all__ = ["DISFA_AUS", "DISFA_FOLDS", "read_disfa", "video_length"]

#: The 12 AUs DISFA codes for intensity.
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
#: The usual 3-fold subject partition of DISFA's 27 subjects (as used by JAA-Net; see the
#: module docstring).
DISFA_FOLDS: tuple[tuple[str, ...], ...] = (
    ("SN001", "SN002", "SN009", "SN010", "SN016", "SN026", "SN027", "SN030", "SN032"),
    ("SN006", "SN011", "SN012", "SN013", "SN018", "SN021", "SN024", "SN028", "SN031"),
    ("SN003", "SN004", "SN005", "SN007", "SN008", "SN017", "SN023", "SN025", "SN029"),
)
_CAMERAS = {"left": "Left", "right": "Right"}
_SUBJECT = re.compile(r"SN\d{3}")


def video_length(path: str | os.PathLike[str]) -> int | None:
    """Frames in a video as its container states them (``CAP_PROP_FRAME_COUNT``), or
    ``None`` when it cannot be opened. A container that overstates it costs nothing worse
    than rows the cache reports as unreadable."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return count if count > 0 else None
    finally:
        capture.release()


def read_disfa(
    root: str | os.PathLike[str],
    camera: str = "left",
    folds: str | os.PathLike[str] | None = "standard",
    problems: Problems | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """Build the manifest of a DISFA folder.

    Args:
        root: The distributed folder (see the module docstring for its layout).
        camera: ``"left"`` or ``"right"``.
        folds: ``"standard"`` (:data:`DISFA_FOLDS`), ``"kfold"`` (3 folds by
            :func:`~aumaps.data.manifest.subject_kfold`, seed 0), a CSV file of
            ``subject,fold`` rows, or ``None`` (no ``fold`` column). Subjects a fold list
            leaves out are reported and dropped.
        problems: Collects the problems met; a new one if ``None``. Returned in
            ``attrs["problems"]``.
        verbose: Print the problems' summary.

    Returns:
        The manifest: ``image`` (``…_comp.avi#i``, absolute), ``subject`` (``SN001``),
        ``sequence`` (``"left"``/``"right"``), ``frame`` (``i``, 0-based), ``fold`` (int
        1–3, unless ``folds`` is ``None``), one ``AUxx_r`` per :data:`DISFA_AUS` (NaN =
        masked).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: Unknown ``camera``.
        ManifestError: No subject with both a video and labels.
    """
    if camera not in _CAMERAS:
        raise ValueError(f"camera must be 'left' or 'right', got {camera!r}")
    root = Path(root).absolute()
    if not root.is_dir():
        raise FileNotFoundError(f"DISFA folder not found: '{root}'")
    problems = Problems() if problems is None else problems
    side = _CAMERAS[camera]
    label_root = root / "ActionUnit_Labels"
    subjects = (
        sorted(p.name for p in label_root.iterdir() if p.is_dir() and _SUBJECT.fullmatch(p.name))
        if label_root.is_dir()
        else []
    )
    tables = []
    for subject in subjects:
        video = root / f"Videos_{side}Camera" / f"{side}Video{subject}_comp.avi"
        length = video_length(video)
        if length is None:
            problems.add("missing_video", video, 0, f"missing or unreadable video; subject {subject} skipped")
            continue
        labels = {}
        for au in DISFA_AUS:
            path = label_root / subject / f"{subject}_au{au}.txt"
            if path.is_file():
                labels[au] = read_label_file(path, problems, first_frame=1)
            else:
                problems.add("missing_file", path, 0, f"no AU{au} labels for {subject}; masked")
        if not labels:
            continue
        n_labels = max((max(values) + 1 for values in labels.values() if values), default=0)
        n = min(length, n_labels)
        if n_labels != length:
            longer = "label files" if n_labels > length else "video"
            problems.add(
                "length_mismatch",
                video,
                0,
                f"video has {length} frames, labels {n_labels}: the last "
                f"{abs(n_labels - length)} frame(s) of the {longer} dropped",
            )
        frames = np.arange(n)
        table = pd.DataFrame(
            {
                "image": [f"{video}#{i}" for i in frames],
                "subject": subject,
                "sequence": camera,
                "frame": frames,
            }
        )
        for au in DISFA_AUS:
            values = labels.get(au, {})
            table[column_name(au)] = np.array([values.get(i, np.nan) for i in frames], dtype=np.float64)
        tables.append(table)
    if not tables:
        raise ManifestError(
            f"no DISFA subject under '{root}' has both labels (ActionUnit_Labels/SN001/"
            f"SN001_au1.txt) and a {camera} camera video"
        )
    manifest = pd.concat(tables, ignore_index=True)
    manifest = _apply_folds(manifest, folds, problems)
    if verbose:
        print(
            f"DISFA '{root}' ({camera} camera): {len(manifest)} frames of "
            f"{manifest['subject'].nunique()} subjects; " + problems.summary()
        )
    manifest.attrs["problems"] = problems
    return manifest


def _apply_folds(manifest: pd.DataFrame, folds: str | os.PathLike[str] | None, problems: Problems) -> pd.DataFrame:
    """Add the ``fold`` column; drop, with a report, subjects the fold lists omit."""
    if folds is None:
        return manifest
    if folds == "standard":
        fold_of = {s: i + 1 for i, fold in enumerate(DISFA_FOLDS) for s in fold}
    elif folds == "kfold":
        fold_of = subject_fold_numbers(manifest["subject"], 3)
    else:
        fold_of = read_subject_table(
            folds, "fold", lambda cell: int(cell) if cell.isdigit() else None, "a positive integer"
        )
    return attach_subject_column(manifest, "fold", fold_of, problems, "no_fold", f"fold of {str(folds)!r}")
