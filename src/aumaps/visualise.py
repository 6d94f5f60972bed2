"""Pictures of AU maps: heatmaps drawn back onto the original image, legends, map grids.

Every AU has one colour, the same in every picture (:func:`au_colour`). Heatmaps live in the
registered crop; :func:`maps_on_image` carries them back through the inverse registration,
warping only the region of the image the crop covers (cheap on large photos and video).

Pictures stay readable with many AUs (OpenFace's 17): only the maps of AUs that read at least
0.5 are drawn, each active AU's number sits on a chip of its colour beside its peak, legends
of more than eight AUs have two columns, upper face and lower face (:func:`au_groups`), and
the faces of a group photo share one table, an AU per row and a face per column.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from . import align
from .aus import MAX_INTENSITY, get_au
from .geometry import interocular_distance

__all__ = [
    "au_colour",
    "au_groups",
    "short_name",
    "maps_on_image",
    "face_mask",
    "draw_faces",
    "draw_legend",
    "legend_panel",
    "legend_width",
    "overlay",
    "figure_maps",
    "face_in_view",
]

_FONT = cv2.FONT_HERSHEY_SIMPLEX


#: One colour per AU, chosen so that AUs acting on the same part of the face stay tellable
#: apart with all 17 OpenFace AUs drawn: the upper face (brows, lids, cheeks) in blues,
#: greens and a purple, the lower face in reds, oranges, yellows, pinks and browns, and the
#: AUs that share the lip corners (12, 14, 15, 20) or the lips (10, 23, 24, 25, 26) in
#: hues far apart. Colours from the Tableau 20 palette (as matplotlib's ``tab20``).
_AU_COLOURS = {
    1: "#4e79a7", 2: "#76b7b2", 4: "#2f4b7c", 5: "#59a14f", 6: "#8cd17d", 7: "#499894", 45: "#b07aa1",
    9: "#9c755f", 10: "#ff9da7", 12: "#e15759", 14: "#f28e2b", 15: "#edc948", 17: "#bab0ac",
    20: "#d4a6c8", 23: "#a0cbe8", 24: "#79706e", 25: "#d37295", 26: "#8b3a3a",
}  # fmt: skip


#: Short names where a legend is narrow: the FACS name said in a few words.
_SHORT_NAMES = {
    1: "Inner brow up", 2: "Outer brow up", 4: "Brow lowered", 5: "Upper lid up", 6: "Cheek raised",
    7: "Lids tight", 9: "Nose wrinkled", 10: "Upper lip up", 12: "Lip corners up", 14: "Dimpler",
    15: "Lip corners down", 17: "Chin raised", 20: "Lips stretched", 23: "Lips tight", 24: "Lips pressed",
    25: "Lips part", 26: "Jaw drop", 45: "Blink",
}  # fmt: skip

#: How pictures, reports and the browser app title each face region (:attr:`aumaps.aus.ActionUnit.region`).
REGION_TITLES = {"upper": "Upper face", "lower": "Lower face"}

#: AUs reading less than this get no map drawn (the network's low-level noise of a dozen
#: inactive AUs would otherwise cover the face in a patchwork of colours), no peak and no chip.
MIN_SHOWN = 0.5


def short_name(au: int) -> str:
    """A few words for AU ``au`` (``"Lip corners up"`` for AU12), for narrow legends."""
    unit = get_au(au)
    return _SHORT_NAMES.get(unit.number, unit.name)


def au_groups(aus: Sequence[int]) -> list[tuple[str, list[int]]]:
    """``aus`` by region of the face, ``[("upper", [...]), ("lower", [...])]``: the upper face
    (brows, lids, cheeks) first, each group in the given order; empty groups left out."""
    groups = [(region, [a for a in aus if get_au(a).region == region]) for region in REGION_TITLES]
    return [(region, members) for region, members in groups if members]


def au_colour(au: int) -> tuple[int, int, int]:
    """The RGB colour of AU ``au`` (:data:`_AU_COLOURS`; the same in every picture, report
    and the browser app)."""
    code = _AU_COLOURS[get_au(au).number].lstrip("#")
    return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)


def _crop_roi(
    matrix: np.ndarray, shape: tuple[int, ...], crop_size: int = align.CROP_SIZE
) -> tuple[int, int, int, int]:
    """Image rectangle x0, y0, x1, y1 covered by the registered crop."""
    corners = np.array([[0, 0], [crop_size, 0], [0, crop_size], [crop_size, crop_size]], float)
    pts = align.transform_points(corners, align.invert(matrix))
    h, w = shape[:2]
    x0, y0 = np.clip(np.floor(pts.min(axis=0)).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(pts.max(axis=0)).astype(int) + 1, 0, [w, h])
    return int(x0), int(y0), int(x1), int(y1)


def maps_on_image(
    heatmaps: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Carry crop-frame heatmaps back onto the image.

    Args:
        heatmaps: ``(A, h, w)`` maps of one face (any size; 64×64 from the network).
        matrix: ``(2, 3)`` image→crop affine of that face.
        shape: the image's shape.

    Returns:
        ``(A, y1 - y0, x1 - x0)`` maps over the image region ``(x0, y0, x1, y1)`` that the crop
        covers (empty region if the face lies outside the image).
    """
    x0, y0, x1, y1 = _crop_roi(matrix, shape)
    m = np.asarray(matrix, dtype=np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], float)  # region pixel -> crop
    out = np.zeros((len(heatmaps), max(y1 - y0, 0), max(x1 - x0, 0)), np.float32)
    if out.size:
        for a, hm in enumerate(np.asarray(heatmaps, dtype=np.float32)):
            out[a] = align.warp_from_crop(hm, m, out.shape[1:])
    return out, (x0, y0, x1, y1)


def face_mask(landmarks: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """Where on the image region ``(x0, y0, x1, y1)`` a face's AUs can show: the hull of its 68
    landmarks with the forehead added (the brows raised by 0.6 of the inter-ocular distance,
    where AU1/2's lines lie), grown by 0.15 of that distance on every side. A bool mask of the
    region's shape; an AU map's values outside it are the network's noise at the crop's edges
    (the crop reaches the neck and the background), not a place where the face moves."""
    x0, y0, x1, y1 = region
    points = np.asarray(landmarks, np.float64)
    iod = float(interocular_distance(points))
    up = (points[36:48].mean(axis=0) - points[8]) / max(np.linalg.norm(points[36:48].mean(axis=0) - points[8]), 1e-6)
    forehead = points[17:27] + 0.6 * iod * up
    hull = cv2.convexHull(np.round(np.vstack([points, forehead]) - [x0, y0]).astype(np.int32))
    mask = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    # grown through the distance to the hull (linear in the pixels; a dilation by a disc of
    # this radius costs its area per pixel: 160 ms on a 1200-px face)
    return cv2.distanceTransform(1 - mask, cv2.DIST_L2, cv2.DIST_MASK_5) <= max(1, round(0.15 * iod))


def draw_faces(
    image: np.ndarray,
    faces: Sequence,
    alpha_max: float = 0.7,
    min_intensity: float = 0.25,
    draw_box: bool = True,
    draw_peaks: bool = True,
    min_shown: float = MIN_SHOWN,
    draw_labels: bool = True,
) -> np.ndarray:
    """Draw each face's AU heatmaps where they sit on ``image`` (a new RGB uint8 array).

    At each pixel of the face (:func:`face_mask`) the strongest shown AU's colour is blended
    in, more opaque the higher its map; pixels under ``min_intensity`` stay clear. Only AUs
    reading at least ``min_shown`` are shown: their maps, their peaks and, with
    ``draw_labels``, their number on a chip of their colour beside their strongest peak (faces
    at least 60 pixels wide).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        faces: :class:`~aumaps.predict.FaceResult` objects of that image.
    """
    out = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 500))
    for face in faces:
        shown = np.asarray(face.intensities, np.float64) >= min_shown
        maps, (x0, y0, x1, y1) = maps_on_image(np.asarray(face.heatmaps)[shown], face.matrix, image.shape)
        if maps.size:
            colours = np.array([au_colour(a) for a, on in zip(face.aus, shown) if on], np.float32)
            best = maps.argmax(axis=0)
            value = maps.max(axis=0)
            alpha = alpha_max * np.sqrt(np.clip(value / MAX_INTENSITY, 0.0, 1.0))
            alpha[value < min_intensity] = 0.0
            alpha[~face_mask(face.landmarks, (x0, y0, x1, y1))] = 0.0
            region = out[y0:y1, x0:x1].astype(np.float32)
            region = region * (1.0 - alpha[..., None]) + colours[best] * alpha[..., None]
            out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
        if draw_box:
            bx = np.round(face.box).astype(int)
            cv2.rectangle(out, (bx[0], bx[1]), (bx[2], bx[3]), (255, 255, 255), thickness)
            origin = (bx[0], max(bx[1] - 4 * thickness, 10))
            (tw, tht), _ = cv2.getTextSize(f"face {face.face_id}", _FONT, 0.4 * thickness, thickness)
            label = (origin[0], origin[1] - tht, origin[0] + tw, origin[1] + thickness)
            cv2.putText(
                out, f"face {face.face_id}", origin, _FONT, 0.4 * thickness, (255, 255, 255), thickness, cv2.LINE_AA
            )
        if draw_peaks:
            for a, au in enumerate(face.aus):
                if not shown[a]:
                    continue
                for x, y in face.peaks[a]:
                    if np.isfinite(x):
                        cv2.circle(
                            out, (int(round(x)), int(round(y))), 2 * thickness + 1, au_colour(au), -1, cv2.LINE_AA
                        )
                        cv2.circle(
                            out, (int(round(x)), int(round(y))), 2 * thickness + 1, (255, 255, 255), 1, cv2.LINE_AA
                        )
        if draw_labels:
            _draw_chips(out, face, shown, taken=[label] if draw_box else [])
    return out


def _text_colour(colour: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``colour`` (by its luma)."""
    r, g, b = colour[:3]
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def _draw_chips(out: np.ndarray, face, shown: np.ndarray, taken: list[tuple[int, int, int, int]]) -> None:
    """Each shown AU's number on a chip of its colour beside its strongest peak (the map's
    arg-max), strongest AU first; a chip that would cover an earlier one (or a rectangle of
    ``taken``, the face's label) tries the other sides of its point and is left out if none
    is free."""
    side = float(np.max(np.asarray(face.box[2:]) - np.asarray(face.box[:2])))
    if not np.isfinite(side) or side < 60:
        return
    scale = float(np.clip(side / 320, 0.35, 1.0))
    th = max(1, round(scale * 1.6))
    pad = max(2, round(3 * scale))
    h, w = out.shape[:2]
    taken = list(taken)
    for a in sorted(np.flatnonzero(shown), key=lambda k: -float(face.intensities[k])):
        x, y = np.asarray(face.argmax[a], np.float64)
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        text = str(face.aus[a])
        (tw, tht), base = cv2.getTextSize(text, _FONT, scale, th)
        cw, ch = tw + 2 * pad, tht + base + 2 * pad
        gap = 3 * th + 3
        for dx, dy in ((gap, -ch - gap), (-cw - gap, -ch - gap), (gap, gap), (-cw - gap, gap)):
            cx, cy = int(round(x + dx)), int(round(y + dy))
            rect = (cx, cy, cx + cw, cy + ch)
            inside = rect[0] >= 0 and rect[1] >= 0 and rect[2] <= w and rect[3] <= h
            if inside and not any(
                rect[0] < t[2] and t[0] < rect[2] and rect[1] < t[3] and t[1] < rect[3] for t in taken
            ):
                break
        else:
            continue
        colour = au_colour(face.aus[a])
        cv2.rectangle(out, rect[:2], (rect[2] - 1, rect[3] - 1), colour, -1)
        cv2.putText(out, text, (cx + pad, cy + pad + tht), _FONT, scale, _text_colour(colour), th, cv2.LINE_AA)
        taken.append(rect)


def _legend_name(au: int) -> str:
    return f"AU{au:02d} {get_au(au).name}"


def _legend_columns(aus: Sequence[int]) -> list[tuple[str | None, list[int]]]:
    """A legend's columns: every AU in one, or for more than eight AUs (OpenFace's 17) one per
    face region, upper face first (as the intensity plots of :mod:`aumaps.report`)."""
    groups = au_groups(aus)
    if len(aus) <= 8 or len(groups) < 2:
        return [(None, list(aus))]
    return [(region, members) for region, members in groups]


#: Text size of two-column legends relative to one column's (their rows are fewer, so lower).
_GROUPED_TEXT = 1.25


def _legend_geometry(aus: Sequence[int], height: int) -> tuple[list, int, int, int, int, float]:
    """``(columns, row, column width, header, value area, text factor)`` of :func:`draw_legend`
    for ``height``: one column 11 rows wide as ever; two columns sized to their names, their
    text larger by :data:`_GROUPED_TEXT` (rows of short videos are low)."""
    columns = _legend_columns(aus)
    longest = max([len(members) for _, members in columns] + [1])
    grouped = len(columns) > 1
    row = max(22, min(48, int((height - 40) / (longest + (0.7 if grouped else 0.0)))))
    if not grouped:
        return columns, row, 11 * row, 0, int(3.2 * row), 1.0
    scale = row / 44 * _GROUPED_TEXT
    th = max(1, round(row / 44 * 1.5))
    name_w = max(cv2.getTextSize(_legend_name(a), _FONT, 0.45 * scale, th)[0][0] for a in aus)
    value_area = cv2.getTextSize("5.00", _FONT, 0.55 * scale, th)[0][0] + 18
    width = row + 6 + max(name_w, int(3.5 * row)) + value_area
    return columns, row, width, int(0.7 * row), value_area, _GROUPED_TEXT


def draw_legend(aus: Sequence[int], intensities: Sequence[float] | None, height: int, title: str = "") -> np.ndarray:
    """A legend panel: per AU its colour, name, an intensity bar and the value (RGB uint8,
    at least ``height`` high). More than eight AUs (OpenFace's 17) stand in two columns, upper
    face and lower face, each headed by its region."""
    columns, row, col_w, header, value_area, text = _legend_geometry(aus, height)
    longest = max([len(members) for _, members in columns] + [1])
    panel = np.full((max(height, 40 + header + row * longest), col_w * len(columns), 3), 32, np.uint8)
    th = max(1, round(row / 44 * 1.5))
    if title:
        cv2.putText(panel, title, (8, int(26 * row / 44) + 6), _FONT, 0.6 * row / 44, (230, 230, 230), th, cv2.LINE_AA)
    scale = row / 44 * text
    values = dict(zip(aus, intensities)) if intensities is not None else None
    top = 40 + header
    for c, (region, members) in enumerate(columns):
        x = c * col_w
        if region is not None:
            cv2.putText(
                panel,
                REGION_TITLES[region],
                (x + 8, top - int(0.25 * row)),
                _FONT,
                0.45 * scale,
                (175, 175, 175),
                th,
                cv2.LINE_AA,
            )
        for i, au in enumerate(members):
            y = top + i * row
            colour = au_colour(au)
            cv2.rectangle(panel, (x + 8, y + 4), (x + row, y + row - 4), colour, -1)
            cv2.putText(
                panel,
                _legend_name(au),
                (x + row + 6, y + int(row * 0.45)),
                _FONT,
                0.45 * scale,
                (235, 235, 235),
                th,
                cv2.LINE_AA,
            )
            if values is not None:
                value = float(values[au])
                bar_x0, bar_x1 = x + row + 6, x + col_w - value_area
                bar_y0, bar_y1 = y + int(row * 0.58), y + row - 5
                cv2.rectangle(panel, (bar_x0, bar_y0), (bar_x1, bar_y1), (70, 70, 70), -1)
                fill = bar_x0 + int(round((bar_x1 - bar_x0) * min(max(value, 0.0), MAX_INTENSITY) / MAX_INTENSITY))
                cv2.rectangle(panel, (bar_x0, bar_y0), (fill, bar_y1), colour, -1)
                cv2.putText(
                    panel,
                    f"{value:.2f}",
                    (bar_x1 + 8, y + int(row * 0.8)),
                    _FONT,
                    0.55 * scale,
                    (255, 255, 255),
                    th,
                    cv2.LINE_AA,
                )
    return panel


def _table_geometry(aus: Sequence[int], height: int) -> tuple[list, int, int, float, int]:
    """``(columns, row, group header, text scale, thickness)`` of the faces' table."""
    columns = _legend_columns(aus)
    groups = len(columns) if len(columns) > 1 else 0
    row = int(np.clip((height - 8) / (1 + len(aus) + 0.8 * groups), 12, 40))
    scale = row / 44
    return columns, row, int(0.8 * row) if groups else 0, scale, max(1, round(scale * 1.5))


def _table_labels(aus: Sequence[int], scale: float, th: int, room: int) -> tuple[list[str], int]:
    """The row labels that fit in ``room`` pixels (FACS names, else short names, else the AU
    numbers alone) and their widest width."""
    for name in (lambda a: get_au(a).name, short_name, None):
        labels = [f"AU{a:02d} {name(a)}" if name else f"AU{a:02d}" for a in aus]
        widest = max(cv2.getTextSize(t, _FONT, scale, th)[0][0] for t in labels)
        if widest <= room or name is None:
            return labels, widest
    raise AssertionError("unreachable")


def _table_width(aus: Sequence[int], height: int, faces: int) -> int:
    """The width at which the faces' table shows ``faces`` faces with their values."""
    _, row, _, scale, th = _table_geometry(aus, height)
    _, widest = _table_labels(aus, scale, th, 10**6)
    value_w = cv2.getTextSize("5.00", _FONT, scale, th)[0][0]
    return int(row * 0.6) + 16 + widest + faces * (value_w + 2 * row)


def _face_table(faces: Sequence, aus: Sequence[int], height: int, width: int) -> np.ndarray:
    """Several faces in one table (RGB uint8, ``height`` × ``width``): an AU per row (grouped
    upper/lower face for more than eight AUs), a face per column with a bar and its value.
    Faces that do not fit in at least about a row's height of width each are left out, and
    the table says how many it shows."""
    columns, row, group_h, scale, th = _table_geometry(aus, height)
    panel = np.full((height, width, 3), 32, np.uint8)
    swatch = max(6, int(row * 0.6))
    labels, label_w = _table_labels(aus, scale, th, int(0.45 * width) - swatch - 16)
    label_of = dict(zip(aus, labels))
    x_cells = swatch + 16 + label_w
    min_cell = max(20, int(1.3 * row))
    shown = max(1, min(len(faces), (width - x_cells) // min_cell))
    cell = (width - x_cells) / shown
    value_w = cv2.getTextSize("5.00", _FONT, scale, th)[0][0]
    with_values = cell >= value_w + row + 10
    grey, light = (175, 175, 175), (235, 235, 235)

    def text(s: str, x: float, y: float, colour=light) -> None:
        cv2.putText(panel, s, (int(x), int(y)), _FONT, scale, colour, th, cv2.LINE_AA)

    baseline = int(row * 0.68)
    if shown < len(faces):
        text(f"{shown} of {len(faces)} faces", 6, baseline, grey)
    for j, face in enumerate(faces[:shown]):
        title = f"face {face.face_id}"
        if cv2.getTextSize(title, _FONT, scale, th)[0][0] > cell - 6:
            title = str(face.face_id)
        text(title, x_cells + j * cell + 3, baseline)
    y = row
    values = [dict(zip(f.aus, np.asarray(f.intensities, float))) for f in faces[:shown]]
    for region, members in columns:
        if region is not None:
            cv2.line(panel, (4, y + 1), (width - 4, y + 1), (80, 80, 80), 1)
            text(REGION_TITLES[region], 6, y + int(group_h * 0.8), grey)
            y += group_h
        for au in members:
            colour = au_colour(au)
            cv2.rectangle(panel, (6, y + (row - swatch) // 2), (6 + swatch, y + (row + swatch) // 2), colour, -1)
            text(label_of[au], swatch + 12, y + baseline)
            for j, face_values in enumerate(values):
                x0 = int(x_cells + j * cell) + 3
                x1 = int(x_cells + (j + 1) * cell) - 4 - (value_w + 6 if with_values else 0)
                y0, y1 = y + int(row * 0.25), y + int(row * 0.75)
                value = face_values.get(au)
                cv2.rectangle(panel, (x0, y0), (x1, y1), (70, 70, 70), -1)
                if value is None or not np.isfinite(value):
                    continue
                fill = x0 + int(round((x1 - x0) * min(max(value, 0.0), MAX_INTENSITY) / MAX_INTENSITY))
                if fill > x0:
                    cv2.rectangle(panel, (x0, y0), (fill, y1), colour, -1)
                if with_values:
                    text(f"{value:.2f}", x1 + 5, y + baseline, (255, 255, 255))
            y += row
    return panel


def legend_width(aus: Sequence[int], height: int, faces: int = 1) -> int:
    """The width :func:`overlay` gives the bars of ``faces`` faces beside a picture ``height``
    high: one face's legend (:func:`draw_legend`); for several, their table's width, at
    least one legend's and at most two."""
    columns, _, col_w, _, _, _ = _legend_geometry(aus, height)
    one = col_w * len(columns)
    return one if faces <= 1 else int(min(2 * one, max(one, _table_width(aus, height, faces))))


def legend_panel(faces: Sequence, aus: Sequence[int], height: int, width: int | None = None) -> np.ndarray:
    """The intensity bars of a picture's faces (RGB uint8, ``height`` high and ``width`` wide,
    default :func:`legend_width`): one face's legend (scaled down if it must), "no face" bars
    when ``faces`` is empty, and for several faces one table, an AU per row and a face per
    column (what stays readable with 17 AUs and a group photo's faces)."""
    width = width or legend_width(aus, height, len(faces))
    if len(faces) > 1:
        return _face_table(faces, aus, height, width)
    panel = np.full((height, width, 3), 32, np.uint8)
    if faces:
        legend = draw_legend(faces[0].aus, faces[0].intensities, height, title=f"face {faces[0].face_id}")
    else:
        legend = draw_legend(aus, None, height, title="no face")
    scale = min(width / legend.shape[1], height / legend.shape[0], 1.0)
    size = (max(int(legend.shape[1] * scale), 1), max(int(legend.shape[0] * scale), 1))
    small = cv2.resize(legend, size, interpolation=cv2.INTER_AREA) if scale < 1 else legend
    panel[: size[1], : size[0]] = small
    return panel


def overlay(
    image: np.ndarray,
    faces: Sequence,
    face_index: int | None = None,
    min_side: int = 480,
    max_side: int = 1600,
    zoom: bool = False,
) -> np.ndarray:
    """The picture ``aumaps predict --maps`` writes: the image with every face's AU maps, and
    the intensity bars of every face beside it (:func:`legend_panel`).

    Args:
        image: ``(H, W, 3)`` uint8 RGB original image.
        faces: the image's :class:`~aumaps.results.FaceResult` objects.
        face_index: draw and describe only this face; ``None``: every face (a group photo
            gives one picture with all of them).
        min_side, max_side: the image is rescaled so its long side lies in this range.
        zoom: show only the region around the faces (small faces in large photos).
    """
    chosen = [f for f in faces if face_index is None or f.face_id == face_index]
    if zoom and chosen:
        image, chosen = _around_faces(image, chosen)
    long_side = max(image.shape[:2])
    s = min(max(1.0, min_side / long_side), max_side / long_side)
    if s != 1.0:
        image = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        chosen = [face_in_view(f, s) for f in chosen]
    canvas = draw_faces(image, chosen)
    if not chosen:
        return canvas
    aus = chosen[0].aus
    legend = legend_panel(chosen, aus, canvas.shape[0], legend_width(aus, canvas.shape[0], len(chosen)))
    return np.concatenate([canvas, legend], axis=1)


def _around_faces(image: np.ndarray, faces: Sequence, margin: float = 0.6):
    """The part of ``image`` around ``faces`` (their boxes grown by ``margin`` box sides) and
    the faces moved into it."""
    boxes = np.array([f.box for f in faces])
    side = float(np.max(boxes[:, 2:] - boxes[:, :2]))
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(boxes[:, :2].min(axis=0) - margin * side).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(boxes[:, 2:].max(axis=0) + margin * side).astype(int), [x0 + 1, y0 + 1], [w, h])
    return np.ascontiguousarray(image[y0:y1, x0:x1]), [face_in_view(f, 1.0, (x0, y0)) for f in faces]


def face_in_view(face, scale: float | tuple[float, float] = 1.0, origin: tuple[float, float] = (0.0, 0.0)):
    """A copy of a :class:`~aumaps.results.FaceResult` in the coordinates of a view of its
    image: the image resized by ``scale`` (one factor, or ``(sx, sy)``), then cut at ``origin``
    (the view's top-left corner, in resized pixels). Points, box and registration follow."""
    from dataclasses import replace

    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (2,))
    o = np.asarray(origin, dtype=np.float64)
    view_to_image = np.array([[1 / s[0], 0, o[0] / s[0]], [0, 1 / s[1], o[1] / s[1]], [0, 0, 1]])
    matrix = (np.vstack([face.matrix, [0, 0, 1]]) @ view_to_image)[:2]

    def points(p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64) * s - o

    box = np.concatenate([points(face.box[:2]), points(face.box[2:])])
    return replace(
        face,
        matrix=matrix,
        box=box,
        peaks=points(face.peaks),
        argmax=points(face.argmax),
        landmarks=points(face.landmarks),
    )


def figure_maps(face, title: str | None = None):
    """A matplotlib figure in the release demo's layout: the crop, then each AU's map over it;
    more than eight AUs (OpenFace's 17) in a row per face region, each row opened by the crop."""
    import matplotlib.pyplot as plt

    columns = _legend_columns(face.aus)
    width = 1 + max(len(members) for _, members in columns)
    side = 2.2 if len(columns) == 1 else 1.7
    fig, grid = plt.subplots(len(columns), width, figsize=(side * width, (side + 0.4) * len(columns)), squeeze=False)
    crop_size = face.crop.shape[0]
    index = {au: a for a, au in enumerate(face.aus)}
    for row, (region, members) in zip(grid, columns):
        row[0].imshow(face.crop)
        row[0].set_title(
            "registered crop" if region is None else f"{REGION_TITLES[region]}",
            fontsize=9,
            fontweight="normal" if region is None else "bold",
        )
        for ax, au in zip(row[1:], members):
            value = face.intensities[index[au]]
            big = cv2.resize(
                np.asarray(face.heatmaps[index[au]], np.float32), (crop_size, crop_size), interpolation=cv2.INTER_LINEAR
            )
            ax.imshow(face.crop, alpha=0.55)
            ax.imshow(np.clip(big, 0, MAX_INTENSITY), cmap="inferno", vmin=0, vmax=MAX_INTENSITY, alpha=0.6)
            ax.set_title(f"AU{au:02d} {value:.2f}", fontsize=9, color=np.array(au_colour(au)) / 255)
        for ax in row[1 + len(members) :]:
            ax.set_visible(False)
    for ax in grid.ravel():
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
