"""AU intensities over time, for people to look at: a plot, statistics, peak frames, a page.

* :func:`load_series` reads a per-frame CSV (:func:`aumaps.video.video_csv_columns`) back;
* :func:`plot_series` draws each AU's intensity against time, one panel per AU, one line
  per face;
* :func:`au_statistics` tabulates per face and AU: mean, standard deviation, median,
  maximum and when it occurs, the share of frames where the AU is active (intensity ≥ 1,
  FACS level A or more) and at least moderately so (≥ 2), and the mean while active;
* :class:`PeakFrames` follows a stream of frame results and keeps, per AU, the frame and
  face where it was strongest, drawn as a thumbnail with that AU's heatmap;
* :func:`write_report` puts all of it in one self-contained HTML page (images embedded as
  base64 PNG), readable offline and in any browser;
* :func:`write_study_page` is the page of a whole study (:mod:`aumaps.study`): one row per
  video with a sparkline per AU (inline SVG, :func:`sparkline_svg`) and a link to the
  video's report.

Statistics are over the frames where the face was found (``success = 1``).
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from .atomic import atomic_path, write_text
from .aus import MAX_INTENSITY, column_name, get_au

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .results import FaceResult, FrameResult

__all__ = [
    "Peak",
    "PeakFrames",
    "StudyVideo",
    "au_statistics",
    "load_series",
    "plot_series",
    "runs",
    "sparkline_svg",
    "write_report",
    "write_study_page",
]

#: Intensity from which an AU counts as active (FACS level A).
ACTIVE = 1.0


def load_series(csv_path: str | os.PathLike[str], aus: Sequence[int]) -> pd.DataFrame:
    """The columns of a per-frame CSV that the plot and report use.

    Returns:
        One row per CSV row: ``frame``, ``timestamp``, ``face_id``, ``success`` and one
        ``AUxx_r`` column per AU (NaN where ``success = 0``).
    """
    columns = ["frame", "timestamp", "face_id", "success"] + [column_name(a) for a in aus]
    table = pd.read_csv(csv_path, usecols=columns, skipinitialspace=True)
    return table[columns]


def _faces(table: pd.DataFrame, limit: int | None = None) -> list[int]:
    """Face ids with at least one successful frame in increasing order; with ``limit``, only
    the ``limit`` faces seen in most frames."""
    counts = table.loc[table["success"] == 1, "face_id"].value_counts()
    return sorted(int(i) for i in counts.index[:limit])


def au_statistics(table: pd.DataFrame, aus: Sequence[int]) -> pd.DataFrame:
    """Per face and AU statistics of a series (see the module docstring).

    Returns:
        Columns ``face_id, AU, name, frames, mean, std, median, max, max_frame, max_time,
        active_pct, moderate_pct, mean_active``; one row per face id with a successful
        frame and AU.
    """
    rows = []
    for face_id in _faces(table):
        face = table[(table["success"] == 1) & (table["face_id"] == face_id)]
        for au in aus:
            values = face[column_name(au)].to_numpy(dtype=float)
            best = int(np.nanargmax(values)) if np.isfinite(values).any() else None
            active = values[values >= ACTIVE]
            rows.append(
                {
                    "face_id": face_id,
                    "AU": au,
                    "name": get_au(au).name,
                    "frames": len(values),
                    "mean": np.nanmean(values),
                    "std": np.nanstd(values),
                    "median": np.nanmedian(values),
                    "max": np.nanmax(values),
                    "max_frame": int(face["frame"].iloc[best]) if best is not None else None,
                    "max_time": float(face["timestamp"].iloc[best]) if best is not None else None,
                    "active_pct": 100.0 * np.mean(values >= ACTIVE),
                    "moderate_pct": 100.0 * np.mean(values >= 2.0),
                    "mean_active": float(active.mean()) if active.size else np.nan,
                }
            )
    columns = [
        "face_id",
        "AU",
        "name",
        "frames",
        "mean",
        "std",
        "median",
        "max",
        "max_frame",
        "max_time",
        "active_pct",
        "moderate_pct",
        "mean_active",
    ]
    return pd.DataFrame(rows, columns=columns)


def plot_series(
    table: pd.DataFrame,
    aus: Sequence[int],
    out: str | os.PathLike[str] | None = None,
    title: str = "",
    max_faces: int = 4,
) -> Path | Figure:
    """Intensity against time, one panel per AU, one line per face (the ``max_faces`` faces
    seen longest); frames without any face are shaded grey.

    Returns:
        ``out`` as a Path once the PNG is written, or the matplotlib figure if ``out`` is None.
    """
    import matplotlib

    if out is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .visualise import au_colour

    frames = table.groupby("frame")["timestamp"].first()
    no_face = table.groupby("frame")["success"].max() == 0
    faces = _faces(table, max_faces)
    styles = ["-", "--", ":", "-."]
    columns = _panel_columns(aus)
    rows = max(len(c) for c in columns)
    fig, grid = plt.subplots(
        rows,
        len(columns),
        figsize=(10 if len(columns) == 1 else 14, (1.5 if rows < 8 else 1.05) * rows + 1.2),
        sharex=True,
        squeeze=False,
    )
    for c, column in enumerate(columns):
        for r in range(len(column), rows):
            grid[r, c].set_visible(False)
        if len(columns) > 1:
            grid[0, c].set_title(f"{'upper' if c == 0 else 'lower'} face", fontsize=10)
    axes = [grid[r, c] for c, column in enumerate(columns) for r in range(len(column))]
    step = float(np.median(np.diff(frames.to_numpy()))) if len(frames) > 1 else 1.0
    for ax, au in zip(axes, [a for column in columns for a in column], strict=True):
        colour = np.array(au_colour(au)) / 255
        for start, stop in runs(no_face.to_numpy()):
            ax.axvspan(frames.iloc[start], frames.iloc[stop - 1] + step, color="0.85", lw=0)
        for k, face_id in enumerate(faces):
            face = table[(table["face_id"] == face_id) & (table["success"] == 1)].set_index("frame")
            series = face[column_name(au)].reindex(frames.index)  # NaN gaps where the face is absent
            ax.plot(
                frames.to_numpy(),
                series.to_numpy(),
                styles[k % len(styles)],
                color=colour,
                lw=1.3,
                label=f"face {face_id}",
            )
        ax.set_ylim(0, MAX_INTENSITY)
        ax.set_yticks([0, 1, 2, 3, 4, 5] if rows < 8 else [0, 5])
        ax.grid(alpha=0.3)
        ax.set_ylabel(f"AU{au:02d}", color=colour, rotation=0, ha="right", va="center", fontweight="bold")
    if len(faces) > 1:
        axes[0].legend(loc="upper right", fontsize=8, ncol=len(faces))
    for c, column in enumerate(columns):
        grid[len(column) - 1, c].set_xlabel("time (s)")
        grid[len(column) - 1, c].xaxis.set_tick_params(labelbottom=True)
    fig.suptitle(title or "AU intensity over time", fontsize=11)
    fig.tight_layout()
    if out is None:
        return fig
    out = Path(out)
    try:
        with atomic_path(out, keep_suffix=True) as temporary:  # never a half-written picture
            fig.savefig(temporary, dpi=100, format=out.suffix[1:].lower() or "png")
    finally:
        plt.close(fig)
    return out


def _region_groups(aus: Sequence[int]) -> list[tuple[str | None, list[int]]]:
    """How a report groups AUs: all in one group (``None``), or for more than eight (OpenFace's
    17) by face region, ``[("upper", [...]), ("lower", [...])]``, as :func:`_panel_columns`."""
    columns = _panel_columns(aus)
    if len(columns) == 1:
        return [(None, columns[0])]
    return [(get_au(column[0]).region, column) for column in columns]


def _panel_columns(aus: Sequence[int]) -> list[list[int]]:
    """The plot's panels: one column of AUs, or, for more than eight (OpenFace's 17), two:
    the upper face (brows, lids, cheeks) and the lower face, each in the model's order."""
    if len(aus) <= 8:
        return [list(aus)]
    upper = [a for a in aus if get_au(a).region == "upper"]
    lower = [a for a in aus if get_au(a).region != "upper"]
    return [column for column in (upper, lower) if column]


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges where the ``(T,)`` bool ``mask`` is true: the shaded
    stretches without a face in the plot, the activation episodes of a summary
    (:func:`aumaps.study.summarize`)."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


@dataclass
class Peak:
    """The frame where one AU was strongest.

    Attributes:
        au: the AU number.
        value: its intensity there.
        frame: 1-based frame number (as in the CSV).
        timestamp: seconds.
        face_id: the face it was measured on.
        thumbnail: ``(h, w, 3)`` uint8 RGB: the face with this AU's heatmap drawn on it.
    """

    au: int
    value: float
    frame: int
    timestamp: float
    face_id: int
    thumbnail: np.ndarray


class PeakFrames:
    """Keeps, while frames stream by, each AU's strongest frame (over all faces).

    Only the face's surroundings are kept (the box enlarged by ``margin``), so memory stays
    small whatever the video's length. Feed it :class:`~aumaps.video.FrameResult` objects
    with :meth:`update`; :meth:`peaks` draws the thumbnails.

    Args:
        aus: AU numbers, in the order of the results' intensities.
        margin: side of the kept region, in face-box sides.
        size: longer side of the thumbnails, in pixels.
    """

    def __init__(self, aus: Sequence[int], margin: float = 1.8, size: int = 220) -> None:
        self.aus = tuple(aus)
        self.margin = float(margin)
        self.size = int(size)
        self._best: dict[int, tuple[float, int, float, FaceResult, np.ndarray]] = {}

    def update(self, result: FrameResult) -> None:
        """Consider the faces of one frame."""
        if result.image is None:
            return
        for face in result.faces:
            better = [a for a, au in enumerate(self.aus) if face.intensities[a] > self._best.get(au, (-np.inf,))[0]]
            if not better:
                continue
            region_face, region = self._region(result.image, face)
            for a in better:
                au = self.aus[a]
                self._best[au] = (float(face.intensities[a]), result.index + 1, result.timestamp, region_face, region)

    def _region(self, image: np.ndarray, face: FaceResult) -> tuple[FaceResult, np.ndarray]:
        """A copy of the image around ``face`` and the face moved into its coordinates."""
        from .visualise import face_in_view

        centre = (face.box[:2] + face.box[2:]) / 2
        half = self.margin * float(np.max(face.box[2:] - face.box[:2])) / 2
        h, w = image.shape[:2]
        x0, y0 = np.clip(np.floor(centre - half).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip(np.ceil(centre + half).astype(int), [x0 + 1, y0 + 1], [w, h])
        moved = replace(face_in_view(face, 1.0, (x0, y0)), crop=np.empty(0))
        return moved, image[y0:y1, x0:x1].copy()

    def peaks(self) -> list[Peak]:
        """Each AU's peak, in AU order (AUs never measured are left out)."""
        from .visualise import draw_faces

        out = []
        for a, au in enumerate(self.aus):
            if au not in self._best:
                continue
            value, frame, timestamp, face, region = self._best[au]
            one = replace(
                face,
                aus=(au,),
                intensities=face.intensities[a : a + 1],
                heatmaps=face.heatmaps[a : a + 1],
                peaks=face.peaks[a : a + 1],
            )
            picture = draw_faces(region, [one], draw_box=False)
            scale = self.size / max(picture.shape[:2])
            picture = cv2.resize(
                picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            )
            out.append(Peak(au, value, frame, timestamp, face.face_id, picture))
        return out


def _png_data_uri(image: np.ndarray | Figure) -> str:
    """An embeddable ``data:image/png;base64,...`` URI of an RGB array or a figure."""
    if isinstance(image, np.ndarray):
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError("PNG encoding failed")
        data = encoded.tobytes()
    else:
        buffer = io.BytesIO()
        image.savefig(buffer, format="png", dpi=100)
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.facts { color: #555; } .facts span { margin-right: 1.5em; white-space: nowrap; }
img.plot { width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 0.92em; width: 100%; }
th, td { padding: 0.3em 0.6em; text-align: right; border-bottom: 1px solid #eee; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; }
th.region { text-align: left; vertical-align: top; font-weight: 600; background: #fafafa; white-space: nowrap; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px;
          vertical-align: -0.1em; margin-right: 0.4em; }
.peaks { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; width: 220px; } figure img { width: 220px; height: auto; border-radius: 4px; }
.peaks.small figure, .peaks.small figure img { width: 165px; } h3.region { font-size: 1em; margin: 1em 0 0.4em; }
figcaption { font-size: 0.85em; color: #444; margin-top: 0.3em; }
footer { margin-top: 2em; color: #888; font-size: 0.85em; }
"""


def _table_html(stats: pd.DataFrame, several_faces: bool) -> str:
    """The per-AU statistics table; for more than eight AUs each face's rows grouped by face
    region (a first column naming the region, one cell spanning its rows)."""
    from .visualise import REGION_TITLES, au_colour

    groups = _region_groups(list(dict.fromkeys(stats["AU"].tolist())))
    grouped = len(groups) > 1
    if grouped:  # each face's rows, upper face first
        order = {au: k for k, au in enumerate(au for _, members in groups for au in members)}
        stats = stats.sort_values(["face_id", "AU"], key=lambda c: c.map(order) if c.name == "AU" else c, kind="stable")
    region_of = {au: region for region, members in groups for au in members}
    size = {region: len(members) for region, members in groups}
    headers = (
        (["face"] if several_faces else [])
        + (["region"] if grouped else [])
        + ["AU", "frames", "mean", "std", "median", "max", "max at (s)", "active ≥1 (%)", "≥2 (%)", "mean when active"]
    )
    head = "".join(f'<th class="name">{h}</th>' if h in ("AU", "region") else f"<th>{h}</th>" for h in headers)
    body = []
    previous = None
    for row in stats.itertuples(index=False):
        r, g, b = au_colour(row.AU)
        cells = [f"<td>{row.face_id}</td>"] if several_faces else []
        if grouped and (row.face_id, region_of[row.AU]) != previous:
            previous = (row.face_id, region_of[row.AU])
            cells.append(
                f'<th class="region" scope="rowgroup" rowspan="{size[region_of[row.AU]]}">'
                f"{REGION_TITLES[region_of[row.AU]]}</th>"
            )
        cells.append(
            f'<td class="name"><span class="swatch" style="background: rgb({r},{g},{b})"></span>'
            f"AU{row.AU:02d} {html.escape(row.name)}</td>"
        )
        cells.append(f"<td>{row.frames}</td>")
        for value in (row.mean, row.std, row.median, row.max):
            cells.append(f"<td>{value:.2f}</td>")
        cells.append(f"<td>{row.max_time:.2f}</td>" if row.max_time is not None else "<td>–</td>")
        cells.append(f"<td>{row.active_pct:.1f}</td><td>{row.moderate_pct:.1f}</td>")
        cells.append(f"<td>{row.mean_active:.2f}</td>" if np.isfinite(row.mean_active) else "<td>–</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="au-statistics"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _page_top(page_title: str, heading: str, title: str, facts: dict[str, str], css: str = "") -> list[str]:
    """The opening of a report page: document head (the shared style plus ``css``), heading,
    the title in bold and the facts line."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(page_title)}</title><style>{_CSS}{css}</style></head><body>",
        f"<h1>{heading}</h1><p><strong>{html.escape(title)}</strong></p>",
        '<p class="facts">'
        + " ".join(f"<span>{html.escape(k)}: <b>{html.escape(v)}</b></span>" for k, v in facts.items())
        + "</p>",
    ]


def write_report(
    out_dir: str | os.PathLike[str],
    table: pd.DataFrame,
    aus: Sequence[int],
    peaks: PeakFrames | None = None,
    title: str = "",
    facts: Mapping[str, str] | None = None,
) -> Path:
    """Write ``out_dir/index.html``: one page holding everything, images embedded; written
    atomically (:mod:`aumaps.atomic`), so an interrupted run never leaves half a page.

    Args:
        out_dir: folder to write into (created).
        table: the series (:func:`load_series`).
        aus: AU numbers.
        peaks: the peak frames, if they were collected.
        title: what was analysed (shown as the heading).
        facts: extra ``label: value`` lines shown under the heading (frame counts, speed...).

    Returns:
        The path of ``index.html``.
    """
    from . import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_frames = int(table["frame"].nunique())
    with_face = int(table.loc[table["success"] == 1, "frame"].nunique())
    shown = {
        "frames": str(n_frames),
        "with a face": f"{with_face} ({100.0 * with_face / max(n_frames, 1):.1f} %)",
        "faces tracked": str(len(_faces(table))),
    }
    shown.update(facts or {})
    stats = au_statistics(table, aus)
    parts = [
        *_page_top(f"aumaps report: {title}", "Action Units over time", title, shown),
        "<h2>Intensity over time</h2>",
    ]
    if with_face:
        figure = plot_series(table, aus, None, title=title)
        parts.append(f'<img class="plot" alt="AU intensity time series" src="{_png_data_uri(figure)}">')
        import matplotlib.pyplot as plt

        plt.close(figure)
        parts.append("<p>Intensity 0–5 per AU; grey: frames without a face.</p>")
    else:
        parts.append("<p>No face was found in any frame.</p>")
    parts.append("<h2>Per-AU statistics</h2>")
    parts.append(_table_html(stats, len(_faces(table)) > 1) if len(stats) else "<p>No face, no statistics.</p>")
    parts.append(
        f"<p>Over the frames where the face was found; active: intensity ≥ {ACTIVE:g} (FACS level A or more).</p>"
    )
    if peaks is not None:
        items = peaks.peaks()
        parts.append("<h2>Frames of peak intensity</h2>")
        if items:
            from .visualise import REGION_TITLES

            by_au = {p.au: p for p in items}
            groups = _region_groups(list(by_au))
            small = " small" if len(groups) > 1 else ""  # 17 AUs: six to a row, by face region
            for region, members in groups:
                if region is not None:
                    parts.append(f'<h3 class="region">{REGION_TITLES[region]}</h3>')
                parts.append(f'<div class="peaks{small}"' + (f' data-region="{region}"' if region else "") + ">")
                for p in (by_au[a] for a in members):
                    caption = (
                        f"AU{p.au:02d} {html.escape(get_au(p.au).name)}: <b>{p.value:.2f}</b><br>"
                        f"frame {p.frame} ({p.timestamp:.2f} s), face {p.face_id}"
                    )
                    parts.append(
                        f'<figure><img alt="AU{p.au:02d} peak" src="{_png_data_uri(p.thumbnail)}">'
                        f"<figcaption>{caption}</figcaption></figure>"
                    )
                parts.append("</div>")
        else:
            parts.append("<p>No face, no peak.</p>")
    parts.append(f"<footer>aumaps {__version__}</footer></body></html>")
    return write_text(out / "index.html", "\n".join(parts))  # atomically: never a half-written report


# -- the study page ----------------------------------------------------------------------


@dataclass
class StudyVideo:
    """One row of the study page.

    Attributes:
        name: the video (its path within the study).
        frames: frames in its CSV.
        frames_with_face: frames with at least one face.
        tracks: face tracks.
        series: AU → ``(T,)`` intensity over the video's frames of its main face (the
            track seen in most frames), NaN where that face is absent.
        csv: link to its CSV, relative to the page.
        report: link to its report, relative to the page (None: no report).
    """

    name: str
    frames: int
    frames_with_face: int
    tracks: int
    series: Mapping[int, np.ndarray]
    csv: str
    report: str | None = None


def sparkline_svg(
    values: np.ndarray, colour: tuple[int, int, int], width: int = 120, height: int = 24, points: int = 120
) -> str:
    """An inline SVG line of ``(T,)`` intensities on the 0–5 scale; longer series are cut
    into ``points`` bins, each drawn at its maximum (so that short activations stay
    visible); NaN (no face) leaves a gap. A dashed line marks intensity 1 (active)."""
    values = np.asarray(values, dtype=float)
    if len(values) > points:
        edges = np.linspace(0, len(values), points + 1).astype(int)
        chunks = [values[a:b] for a, b in pairwise(edges)]
        values = np.array([np.nanmax(c) if np.isfinite(c).any() else np.nan for c in chunks])
    n = len(values)
    x = np.linspace(1, width - 1, n) if n > 1 else np.array([width / 2])
    y = height - 1 - np.clip(values, 0, MAX_INTENSITY) / MAX_INTENSITY * (height - 2)
    stroke = "rgb({},{},{})".format(*(int(c) for c in colour))
    lines = []
    for start, stop in runs(np.isfinite(values)):
        pts = " ".join(f"{x[i]:.1f},{y[i]:.1f}" for i in range(start, stop))
        if stop - start == 1:
            lines.append(f'<circle cx="{x[start]:.1f}" cy="{y[start]:.1f}" r="1.2" fill="{stroke}"/>')
        else:
            lines.append(f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="1.2"/>')
    active = height - 1 - (height - 2) / MAX_INTENSITY
    finite = values[np.isfinite(values)]
    label = f"mean {finite.mean():.2f}, max {finite.max():.2f}" if finite.size else "no face"
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{label}"><title>{label}</title>'
        f'<line x1="0" x2="{width}" y1="{active:.1f}" y2="{active:.1f}" stroke="#ccc" stroke-dasharray="2,2"/>'
        + "".join(lines)
        + "</svg>"
    )


def write_study_page(
    path: str | os.PathLike[str],
    videos: Sequence[StudyVideo],
    aus: Sequence[int],
    title: str = "",
    facts: Mapping[str, str] | None = None,
    failures: Mapping[str, str] | None = None,
) -> Path:
    """Write the study page: one row per video (its name linking to its report when there
    is one), frames, share with a face, tracks, a sparkline per AU and a link to the CSV;
    then the items that failed, with why. More than eight AUs (OpenFace's 17): the AU columns
    by face region under a header row naming it, narrower sparklines. Written atomically;
    returns ``path``."""
    from . import __version__
    from .visualise import REGION_TITLES, au_colour

    groups = _region_groups(aus)
    many = len(groups) > 1  # more than eight AUs: columns by face region, narrower sparklines
    aus = [a for _, members in groups for a in members]
    spark = {"width": 72, "height": 22} if many else {}
    head = ["video", "frames", "with a face", "tracks"]
    cells = "".join(f'<th class="name">{h}</th>' if h == "video" else f"<th>{h}</th>" for h in head)
    starts = {members[0] for _, members in groups[1:]}  # a line between the regions
    edge = {au: ' class="region-start"' if au in starts else "" for au in aus}
    for au in aus:
        r, g, b = au_colour(au)
        cells += (
            f'<th{edge[au]} title="{html.escape(get_au(au).name)}"><span class="swatch" style="background: '
            f'rgb({r},{g},{b})"></span>AU{au:02d}</th>'
        )
    if many:
        cells = (
            f'<tr class="regions"><th colspan="{len(head)}"></th>'
            + "".join(
                f'<th{edge[members[0]]} colspan="{len(members)}" data-region="{region}">{REGION_TITLES[region]}</th>'
                for region, members in groups
            )
            + "<th></th></tr><tr>"
            + cells
        )
    else:
        cells = "<tr>" + cells
    body = []
    for video in videos:
        name = html.escape(video.name)
        link = f'<a href="{html.escape(video.report)}">{name}</a>' if video.report else name
        share = 100.0 * video.frames_with_face / max(video.frames, 1)
        row = [
            f'<td class="name">{link}</td>',
            f"<td>{video.frames}</td>",
            f"<td>{share:.0f} %</td>",
            f"<td>{video.tracks}</td>",
        ]
        row += [
            f"<td{edge[au]}>{sparkline_svg(video.series[au], au_colour(au), **spark)}</td>"
            if au in video.series
            else f"<td{edge[au]}>–</td>"
            for au in aus
        ]
        row.append(f'<td><a href="{html.escape(video.csv)}">CSV</a></td>')
        body.append("<tr>" + "".join(row) + "</tr>")
    shown = {"videos": str(len(videos)), **(facts or {})}
    parts = [
        *_page_top(
            f"aumaps study: {title}",
            "Action Units across a study",
            title,
            shown,
            css="td svg.spark { display: block; } td, th { vertical-align: middle; } "
            ".wide { overflow-x: auto; } tr.regions th { text-align: center; border-bottom: 2px solid #ddd; }"
            " .region-start { border-left: 2px solid #ddd; }"
            + (" body { max-width: 1700px; } #study td, #study th { padding: 0.25em 0.3em; }" if many else ""),
        ),
        (
            f'<div class="wide"><table id="study"><thead>{cells}<th></th></tr></thead><tbody>{"".join(body)}</tbody>'
            "</table></div>"
        ),
        (
            f"<p>Each line: the intensity (0–5) of the video's main face (the track seen in most frames) over the "
            f"video's length; dashed: intensity {ACTIVE:g} (active); gaps: frames without that face. Longer videos "
            "are drawn at each stretch's maximum.</p>"
        ),
    ]
    if failures:
        parts.append(
            "<h2>Failed</h2><ul>"
            + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in failures.items())
            + "</ul>"
        )
    parts.append(f"<footer>aumaps {__version__}</footer></body></html>")
    return write_text(path, "\n".join(parts))
