"""What the page receives about faces and AUs: plain JSON the browser draws from.

A face's AU maps travel as the network's ``(A, 64, 64)`` maps quantised to bytes
(intensity 0-5 → 0-255, base64) with the affine that places the map's pixels on the image
(``map_to_image``, in canvas coordinates: a pixel's square spans ``[x, x + 1)``). The page
draws them with one canvas transform, as :func:`aumaps.visualise.draw_faces` draws them in
Python: at each pixel the strongest shown AU's colour, more opaque the higher its map. Map
pixels off the face (:func:`aumaps.visualise.face_mask`) are sent as zero, as Python leaves
them clear.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import align
from ..aus import MAX_INTENSITY, get_au
from ..results import FaceResult
from ..visualise import REGION_TITLES, au_colour, face_mask, short_name

__all__ = ["au_info", "face_payload", "map_to_image"]


def au_info(aus: Sequence[int]) -> list[dict[str, Any]]:
    """Per AU, in the model's order: number, label (``AU06``), FACS name, a short name for
    narrow places (:func:`aumaps.visualise.short_name`), colour (``#rrggbb``, as in every
    picture), and the region of the face it acts on (``upper``: brows, lids, cheeks;
    ``lower``) with that region's title (``Upper face``), by which the page groups bars and
    toggles."""
    return [
        {
            "au": int(a),
            "label": get_au(a).label,
            "name": get_au(a).name,
            "short": short_name(a),
            "colour": "#{:02x}{:02x}{:02x}".format(*au_colour(a)),
            "region": get_au(a).region,
            "region_title": REGION_TITLES[get_au(a).region],
        }
        for a in aus
    ]


def map_to_image(matrix: np.ndarray, map_size: int, crop_size: int) -> list[list[float]]:
    """The ``(2, 3)`` affine from map canvas coordinates to image canvas coordinates.

    ``matrix`` is the face's image→crop affine. In OpenCV's convention (which
    :func:`aumaps.align.warp_from_crop` follows) a pixel's value sits at its integer
    coordinate; on a canvas it fills ``[x, x + 1)``, hence the half-pixel shifts.
    """
    scale = map_size / crop_size
    to_map = np.vstack([np.asarray(matrix, np.float64) * scale, [0, 0, 1]])
    from_map = np.vstack([align.invert(to_map[:2]), [0, 0, 1]])
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    unhalf = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    return np.round((half @ from_map @ unhalf)[:2], 6).tolist()


def _point(xy: np.ndarray) -> list[float] | None:
    return [round(float(xy[0]), 2), round(float(xy[1]), 2)] if np.all(np.isfinite(xy)) else None


def face_payload(face: FaceResult, crop_size: int) -> dict[str, Any]:
    """One face for the page: box, intensities, peaks, landmarks, maps and their placement."""
    maps = np.clip(np.asarray(face.heatmaps, np.float32) / MAX_INTENSITY, 0.0, 1.0)
    size = maps.shape[-1]
    on_map = align.transform_points(np.asarray(face.landmarks, np.float64), face.matrix) * (size / crop_size)
    maps = maps * face_mask(on_map, (0, 0, size, size))
    quantised = np.round(maps * 255).astype(np.uint8)
    return {
        "face_id": int(face.face_id),
        "box": [round(float(v), 2) for v in face.box],
        "confidence": None if not np.isfinite(face.confidence) else round(float(face.confidence), 4),
        "intensities": [round(float(v), 4) for v in face.intensities],
        "argmax": [_point(p) for p in face.argmax],
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks],
        "map_size": int(quantised.shape[-1]),
        "maps": base64.b64encode(quantised.tobytes()).decode("ascii"),
        "map_to_image": map_to_image(face.matrix, quantised.shape[-1], crop_size),
    }
