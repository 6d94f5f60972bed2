"""Dense warp through landmarks: a thin-plate spline that carries an image along when its
landmarks move, with a fixed ring of anchors around the head and on the image's border.
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import _axes

#: The warp's field is computed exactly every ``_GRID_STEP`` canvas pixels, then
#: interpolated bilinearly.
_GRID_STEP = 4


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Thin-plate radial basis ``r² log r`` between ``(N, 2)`` points ``a`` and ``(K, 2)``
    points ``b``, ``(N, K)``."""
    r2 = (a[:, None, 0] - b[None, :, 0]) ** 2 + (a[:, None, 1] - b[None, :, 1]) ** 2
    return 0.5 * r2 * np.log(np.maximum(r2, 1e-20))


def _anchors(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fixed control points: a ring around the head and the image's border, ``(K, 2)``."""
    ex, ey, iod = _axes(landmarks)
    centre = landmarks.mean(axis=0)
    angles = np.linspace(0.0, 2.0 * np.pi, 20, endpoint=False)
    # farther below the face than above it: the jaw drops up to 0.3 IOD (AU26) towards them
    down = np.where(np.sin(angles) > 0, 1.9, 1.45)
    ring = centre + iod * (1.25 * np.cos(angles)[:, None] * ex + down[:, None] * np.sin(angles)[:, None] * ey)
    h, w = shape
    xs, ys = np.linspace(0, w - 1, 4), np.linspace(0, h - 1, 4)
    border = [(x, y) for x in xs for y in (ys[0], ys[-1])] + [(x, y) for y in ys[1:-1] for x in (xs[0], xs[-1])]
    return np.concatenate([ring, np.array(border)])


def _warp_maps(src: np.ndarray, dst: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps of the thin-plate spline that takes ``src`` points to ``dst``.

    The spline interpolates, at each ``dst`` point, the position in the source image it
    comes from (so points that meet in the source, like closed lips, can part); it is solved
    once for the K control points, evaluated on a grid every ``_GRID_STEP`` pixels and
    upsampled bilinearly. The solve is OpenCV's single-threaded LU: a multi-threaded BLAS
    is slow on such small systems when other processes keep the cores busy.

    Args:
        src: ``(K, 2)`` points in the source image.
        dst: ``(K, 2)`` where they go in the output.
        shape: ``(H, W)`` of the output.

    Returns:
        ``map_x, map_y``: ``(H, W)`` float32 source coordinates of each output pixel.
    """
    h, w = shape
    scale = 1.0 / max(h, w)  # the kernel is evaluated on coordinates in [0, 1]
    c = dst * scale
    n = len(c)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _tps_kernel(c, c) + 1e-7 * np.eye(n)  # tolerates coinciding points
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1 :] = c
    system[n + 1 :, :n] = c.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = (src - dst) * scale
    _, coef = cv2.solve(system, rhs, flags=cv2.DECOMP_LU)
    gh, gw = -(-h // _GRID_STEP), -(-w // _GRID_STEP)
    # grid positions chosen so that cv2.resize (pixel-centre aligned) lands on the pixels
    gx = ((np.arange(gw) + 0.5) * w / gw - 0.5) * scale
    gy = ((np.arange(gh) + 0.5) * h / gh - 0.5) * scale
    pts = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    field = _tps_kernel(pts, c) @ coef[:n] + coef[n] + pts @ coef[n + 1 :]
    field = (field / scale).reshape(gh, gw, 2).astype(np.float32)
    field = cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return grid_x + field[..., 0], grid_y + field[..., 1]


def _warp_image(image: np.ndarray, src_lms: np.ndarray, dst_lms: np.ndarray) -> np.ndarray:
    """``image`` warped smoothly so that what was at ``src_lms`` moves to ``dst_lms``
    (``(68, 2)`` each); a ring around the head and the border stay put."""
    anchors = _anchors(src_lms, image.shape[:2])
    map_x, map_y = _warp_maps(np.concatenate([src_lms, anchors]), np.concatenate([dst_lms, anchors]), image.shape[:2])
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
