"""The study page: every video of a results folder on one HTML page
(:func:`aumaps.report.write_study_page`), with a sparkline per AU and links to each video's
report and CSV, and the items that failed (from the run logs)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import report as reporting
from .runlog import merged_items
from .summary import csv_aus, result_csvs

__all__ = ["study_videos", "write_study_page"]


def study_videos(
    results_dir: str | os.PathLike[str],
    relative_to: str | os.PathLike[str] | None = None,
) -> tuple[list[reporting.StudyVideo], tuple[int, ...]]:
    """The study page's rows for the video CSVs under ``results_dir`` (links relative to
    ``relative_to``, by default ``results_dir``), and the AUs they share, in order."""
    root = Path(results_dir)
    base = Path(relative_to) if relative_to is not None else root
    videos, aus = [], []
    for path in result_csvs(root):
        these = csv_aus(path)
        aus += [a for a in these if a not in aus]
        table = reporting.load_series(path, these)
        frames = np.sort(table["frame"].unique())
        found = table[table["success"] == 1]
        counts = found["face_id"].value_counts()
        series = {}
        if len(counts):
            main = found[found["face_id"] == counts.index[0]].groupby("frame").first()
            series = {a: main[f"AU{a:02d}_r"].reindex(frames).to_numpy(dtype=float) for a in these}
        report = path.with_name(path.stem + "_report") / "index.html"
        videos.append(
            reporting.StudyVideo(
                name=path.relative_to(root).with_suffix("").as_posix(),
                frames=len(frames),
                frames_with_face=int(found["frame"].nunique()),
                tracks=len(counts),
                series=series,
                csv=os.path.relpath(path, base).replace(os.sep, "/"),
                report=os.path.relpath(report, base).replace(os.sep, "/") if report.is_file() else None,
            )
        )
    return videos, tuple(aus)


def write_study_page(
    results_dir: str | os.PathLike[str], path: str | os.PathLike[str] | None = None, title: str | None = None
) -> Path:
    """Write the study page of ``results_dir`` to ``path`` (default ``results_dir/index.html``).

    Raises:
        ValueError: no video CSV under ``results_dir``.
    """
    root = Path(results_dir)
    page = Path(path) if path is not None else root / "index.html"
    videos, aus = study_videos(root, page.parent)
    if not videos:
        raise ValueError(f"'{root}' holds no aumaps video CSV for a study page")
    failures = {
        entry.get("source", key): entry.get("error") or "failed"
        for key, entry in merged_items(root).items()
        if entry.get("status") == "failed"
    }
    frames = sum(v.frames for v in videos)
    facts = {"frames": f"{frames:,}", "failed": str(len(failures))}
    return reporting.write_study_page(
        page, videos, aus, title=title or str(root.resolve()), facts=facts, failures=failures
    )
