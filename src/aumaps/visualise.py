"""Pictures of AU maps: heatmaps drawn back onto the original image, legends, map grids.

Every AU has one colour, the same in every picture (:func:`au_colour`). Heatmaps live in the
registered crop; :func:`maps_on_image` carries them back through the inverse registration,
warping only the region of the image the crop covers (cheap on large photos and video).
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from . import align
from .aus import MAX_INTENSITY, get_au

__all__ = ["au_colour", "maps_on_image", "draw_faces", "draw_legend", "legend_panel", "overlay", "figure_maps",
           "face_in_view"]

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


def au_colour(au: int) -> tuple[int, int, int]:
    """The RGB colour of AU ``au`` (:data:`_AU_COLOURS`; the same in every picture, report
    and the browser app)."""
    code = _AU_COLOURS[get_au(au).number].lstrip("#")
    return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)


def _crop_roi(matrix: np.ndarray, shape: tuple[int, ...], crop_size: int = align.CROP_SIZE) -> tuple[int, int, int, int]:
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


def draw_faces(
    image: np.ndarray,
    faces: Sequence,
    alpha_max: float = 0.7,
    min_intensity: float = 0.25,
    draw_box: bool = True,
    draw_peaks: bool = True,
) -> np.ndarray:
    """Draw each face's AU heatmaps where they sit on ``image`` (a new RGB uint8 array).

    At each pixel the strongest AU's colour is blended in, more opaque the higher its map.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        faces: :class:`~aumaps.predict.FaceResult` objects of that image.
    """
    out = image.copy()
    for face in faces:
        maps, (x0, y0, x1, y1) = maps_on_image(face.heatmaps, face.matrix, image.shape)
        if maps.size == 0:
            continue
        colours = np.array([au_colour(a) for a in face.aus], np.float32)
        best = maps.argmax(axis=0)
        value = maps.max(axis=0)
        alpha = alpha_max * np.sqrt(np.clip(value / MAX_INTENSITY, 0.0, 1.0))
        alpha[value < min_intensity] = 0.0
        region = out[y0:y1, x0:x1].astype(np.float32)
        region = region * (1.0 - alpha[..., None]) + colours[best] * alpha[..., None]
        out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
        thickness = max(1, round(max(image.shape[:2]) / 500))
        if draw_box:
            bx = np.round(face.box).astype(int)
            cv2.rectangle(out, (bx[0], bx[1]), (bx[2], bx[3]), (255, 255, 255), thickness)
            cv2.putText(out, f"face {face.face_id}", (bx[0], max(bx[1] - 4 * thickness, 10)), _FONT,
                        0.4 * thickness, (255, 255, 255), thickness, cv2.LINE_AA)
        if draw_peaks:
            for a, au in enumerate(face.aus):
                if face.intensities[a] < 0.5:
                    continue
                for x, y in face.peaks[a]:
                    if np.isfinite(x):
                        cv2.circle(out, (int(round(x)), int(round(y))), 2 * thickness + 1,
                                   au_colour(au), -1, cv2.LINE_AA)
                        cv2.circle(out, (int(round(x)), int(round(y))), 2 * thickness + 1,
                                   (255, 255, 255), 1, cv2.LINE_AA)
    return out


def draw_legend(
    aus: Sequence[int], intensities: Sequence[float] | None, height: int, title: str = ""
) -> np.ndarray:
    """A legend panel: per AU its colour, name, an intensity bar and the value (RGB uint8)."""
    row = max(22, min(48, (height - 40) // max(len(aus), 1)))
    width = 11 * row
    panel_h = max(height, 40 + row * len(aus))
    panel = np.full((panel_h, width, 3), 32, np.uint8)
    scale = row / 44
    th = max(1, round(scale * 1.5))
    if title:
        cv2.putText(panel, title, (8, int(26 * scale) + 6), _FONT, 0.6 * scale, (230, 230, 230), th, cv2.LINE_AA)
    top = 40
    for i, au in enumerate(aus):
        y = top + i * row
        colour = au_colour(au)
        cv2.rectangle(panel, (8, y + 4), (8 + row - 8, y + row - 4), colour, -1)
        name = f"AU{au:02d} {get_au(au).name}"
        cv2.putText(panel, name, (row + 6, y + int(row * 0.45)), _FONT, 0.45 * scale, (235, 235, 235), th, cv2.LINE_AA)
        if intensities is not None:
            value = float(intensities[i])
            bar_x0, bar_x1 = row + 6, width - int(3.2 * row)
            bar_y0, bar_y1 = y + int(row * 0.58), y + row - 5
            cv2.rectangle(panel, (bar_x0, bar_y0), (bar_x1, bar_y1), (70, 70, 70), -1)
            fill = bar_x0 + int(round((bar_x1 - bar_x0) * min(max(value, 0.0), MAX_INTENSITY) / MAX_INTENSITY))
            cv2.rectangle(panel, (bar_x0, bar_y0), (fill, bar_y1), colour, -1)
            cv2.putText(panel, f"{value:.2f}", (bar_x1 + 8, y + int(row * 0.8)), _FONT, 0.55 * scale,
                        (255, 255, 255), th, cv2.LINE_AA)
    return panel


def legend_panel(faces: Sequence, aus: Sequence[int], height: int, width: int | None = None) -> np.ndarray:
    """The intensity bars of every face, side by side in a grid (RGB uint8, ``height`` high and
    ``width`` wide, default one legend's width); "no face" bars when ``faces`` is empty."""
    width = width or draw_legend(aus, None, height).shape[1]
    panel = np.full((height, width, 3), 32, np.uint8)
    count = max(len(faces), 1)
    cols = math.ceil(math.sqrt(count))
    cell_w, cell_h = width // cols, height // math.ceil(count / cols)
    legends = [draw_legend(f.aus, f.intensities, cell_h, title=f"face {f.face_id}") for f in faces]
    legends = legends or [draw_legend(aus, None, cell_h, title="no face")]
    for i, legend in enumerate(legends):
        scale = min(cell_w / legend.shape[1], cell_h / legend.shape[0], 1.0)
        size = (max(int(legend.shape[1] * scale), 1), max(int(legend.shape[0] * scale), 1))
        small = cv2.resize(legend, size, interpolation=cv2.INTER_AREA) if scale < 1 else legend
        row, col = divmod(i, cols)
        panel[row * cell_h : row * cell_h + size[1], col * cell_w : col * cell_w + size[0]] = small
    return panel


def overlay(image: np.ndarray, faces: Sequence, face_index: int | None = None,
            min_side: int = 480, max_side: int = 1600, zoom: bool = False) -> np.ndarray:
    """The picture ``aumaps predict --maps`` writes: the image with every face's AU maps, and
    the intensity bars of every face beside it.

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
    width = draw_legend(aus, None, canvas.shape[0]).shape[1] * (1 if len(chosen) == 1 else 2)
    legend = legend_panel(chosen, aus, canvas.shape[0], width)
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
    return replace(face, matrix=matrix, box=box, peaks=points(face.peaks), argmax=points(face.argmax),
                   landmarks=points(face.landmarks))


def figure_maps(face, title: str | None = None):
    """A matplotlib figure in the release demo's layout: the crop, then each AU's map over it."""
    import matplotlib.pyplot as plt

    n = len(face.aus)
    fig, axes = plt.subplots(1, n + 1, figsize=(2.2 * (n + 1), 2.6))
    axes[0].imshow(face.crop)
    axes[0].set_title("registered crop", fontsize=9)
    crop_size = face.crop.shape[0]
    for ax, au, hm, value in zip(axes[1:], face.aus, face.heatmaps, face.intensities):
        big = cv2.resize(hm, (crop_size, crop_size), interpolation=cv2.INTER_LINEAR)
        ax.imshow(face.crop, alpha=0.55)
        ax.imshow(np.clip(big, 0, MAX_INTENSITY), cmap="inferno", vmin=0, vmax=MAX_INTENSITY, alpha=0.6)
        ax.set_title(f"AU{au:02d} {value:.2f}", fontsize=9, color=np.array(au_colour(au)) / 255)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
