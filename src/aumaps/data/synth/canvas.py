"""The canvas and drawing on it.

:data:`CANVAS` is the side of the square canvas that identities live in and AUs are rendered
in, and ``_CANONICAL_68`` is where a canonical face sits in it. The rest are the drawing
primitives that faces, AU appearance and backgrounds are painted with: anti-aliased,
sub-pixel filled polygons, ellipses and polylines as float masks, alpha compositing, and
smooth random fields.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...align import TEMPLATE_68

#: Side of the square canvas that identities live in and AUs are rendered in, in pixels.
CANVAS = 256
#: Where a canonical face sits in the canvas: :data:`aumaps.align.TEMPLATE_68` scaled by
#: ``_FACE_SCALE`` (IOD ≈ 66 px) about its centre, which is moved to ``_FACE_CENTRE``, so
#: that hair, forehead, neck and a margin for head pose fit.
_FACE_SCALE = 0.68
_FACE_CENTRE = np.array([128.0, 136.0])
_CANONICAL_68 = (TEMPLATE_68 - TEMPLATE_68.mean(axis=0)) * _FACE_SCALE + _FACE_CENTRE


_SHIFT = 4  # sub-pixel bits of OpenCV drawing coordinates


def _fill(
    shape: tuple[int, int],
    polygon: np.ndarray,
    value: float = 1.0,
    canvas: np.ndarray | None = None,
) -> np.ndarray:
    """``polygon`` (``(K, 2)`` float) filled with ``value`` into ``canvas`` (zeros if None)."""
    out = np.zeros(shape, np.float32) if canvas is None else canvas
    cv2.fillPoly(out, [_fixed(polygon)], value, cv2.LINE_AA, shift=_SHIFT)
    return out


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float points as the fixed-point int32 array OpenCV draws with ``shift=_SHIFT``."""
    return np.round(np.asarray(points) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int, channels: int = 1) -> np.ndarray:
    """Smooth random field in about [-1, 1]: ``cells``×``cells`` values upsampled cubically."""
    coarse = rng.uniform(-1.0, 1.0, (cells, cells, channels)).astype(np.float32)
    out = cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC)
    return out.reshape(*shape, channels) if channels > 1 else out.reshape(shape)


def _ellipse(shape: tuple[int, int], centre: np.ndarray, axes: tuple[float, float], angle: float = 0.0) -> np.ndarray:
    """``(H, W)`` float32 mask of a filled ellipse (half-axes ``axes`` px, ``angle`` degrees)."""
    out = np.zeros(shape, np.float32)
    cx, cy = (int(v) for v in _fixed(centre).ravel())
    half = tuple(max(int(a * (1 << _SHIFT)), 1) for a in axes)
    cv2.ellipse(out, (cx, cy), half, angle, 0, 360, 1.0, -1, cv2.LINE_AA, _SHIFT)
    return out


def _stroke(shape: tuple[int, int], points: np.ndarray, thickness: float = 1.0) -> np.ndarray:
    """``(H, W)`` float32 mask of an open polyline through ``(K, 2)`` points."""
    out = np.zeros(shape, np.float32)
    width = max(int(round(thickness)), 1)
    cv2.polylines(out, [_fixed(points)], False, 1.0, width, cv2.LINE_AA, _SHIFT)
    return out


def _over(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray | float) -> np.ndarray:
    """``image`` (``(H, W, 3)`` float) under ``colour`` at opacity ``alpha`` (``(H, W)``)."""
    a = alpha[..., None]
    return image * (1.0 - a) + a * colour
