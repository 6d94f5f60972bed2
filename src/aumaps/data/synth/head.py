"""The head in depth: a relief for any face of the canvas (:func:`_depth_map`, from the depth of
a mean face's 68 landmarks, :data:`_DEPTH_68`), and what it makes possible on flat photos:
turning the head out of the image plane (:func:`_turn_maps`, yaw and pitch to about ±35°) and
relighting it from another direction (:func:`_relight`).

Depths are in inter-ocular distances (IOD), positive towards the camera, 0 at the outer eye
corners. The values are our own estimates from average facial anthropometry (the nose tip
about 0.38 IOD ahead of the outer eye corners, the inner corners 0.12, the jaw's angles 0.5
behind), not a scanned model: enough for the geometry of a turn and the shading of a relief.
The relief is smoothed so that no surface is steeper than a 38° turn can fold over: a turned
face's far cheek is compressed, not hidden behind the nose.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...aus import MIRROR_68
from .geometry import _axes
from .identity import _head_polygon
from .warp import _tps_kernel

# fmt: off
_HALF_DEPTH = {
    # jaw line, ear to chin
    0: -0.55, 1: -0.46, 2: -0.37, 3: -0.27, 4: -0.16, 5: -0.05, 6: 0.05, 7: 0.12, 8: 0.15,
    # brows, outer to inner
    17: -0.02, 18: 0.06, 19: 0.11, 20: 0.14, 21: 0.15,
    # nose: root to tip, then the nostrils from the left wing to the columella
    27: 0.15, 28: 0.21, 29: 0.29, 30: 0.38, 31: 0.18, 32: 0.25, 33: 0.30,
    # eye: outer corner, upper lid, inner corner, lower lid
    36: 0.0, 37: 0.08, 38: 0.10, 39: 0.12, 40: 0.08, 41: 0.05,
    # outer lips: corner, upper lip to its centre, lower lip
    48: 0.10, 49: 0.20, 50: 0.26, 51: 0.29, 57: 0.25, 58: 0.22, 59: 0.16,
    # inner lips
    60: 0.11, 61: 0.21, 62: 0.24, 66: 0.22, 67: 0.19,
}
# fmt: on


def _depth_68() -> np.ndarray:
    depth = np.full(68, np.nan)
    for i, z in _HALF_DEPTH.items():
        depth[i] = depth[MIRROR_68[i]] = z
    assert np.isfinite(depth).all()
    return depth


#: Depth of each of the 68 landmarks of a mean face, IOD, towards the camera.
_DEPTH_68 = _depth_68()

#: Depth of the back of the head's outline and of the scene behind it.
_BACK = -0.6
_GRID = 8  # the relief is interpolated exactly every _GRID pixels, then resized
_STEP = 4  # a turn's motion is computed exactly every _STEP pixels


def _depth_map(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float32 depth of every pixel, in pixels (IOD × the face's IOD): a thin-plate
    spline through the 68 landmarks' depths, the forehead's curve and the head's outline at
    :data:`_BACK`, smoothed (see the module's note)."""
    ex, ey, iod = _axes(landmarks)
    centre = landmarks.mean(axis=0)
    forehead = _head_polygon(landmarks, forehead=0.75)[17:]
    t = np.linspace(1.0, -1.0, len(forehead))
    angles = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    ring = centre + iod * (1.3 * np.cos(angles)[:, None] * ex + 1.55 * np.sin(angles)[:, None] * ey)
    points = np.concatenate([landmarks, forehead, ring])
    values = np.concatenate([_DEPTH_68, 0.1 - 0.45 * t**2, np.full(len(ring), _BACK)])
    h, w = shape
    scale = 1.0 / max(h, w)
    c = points * scale
    n = len(c)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _tps_kernel(c, c) + 1e-6 * np.eye(n)
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1 :] = c
    system[n + 1 :, :n] = c.T
    rhs = np.zeros((n + 3, 1))
    rhs[:n, 0] = values
    _, coef = cv2.solve(system, rhs, flags=cv2.DECOMP_LU)
    gh, gw = -(-h // _GRID) + 1, -(-w // _GRID) + 1
    gx, gy = np.meshgrid(np.arange(gw) * _GRID * scale, np.arange(gh) * _GRID * scale)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=-1)
    z = _tps_kernel(grid, c) @ coef[:n, 0] + coef[n, 0] + grid @ coef[n + 1 :, 0]
    z = cv2.resize(z.reshape(gh, gw).astype(np.float32), (gw * _GRID, gh * _GRID), interpolation=cv2.INTER_LINEAR)[
        :h, :w
    ]
    # outside the head's ring the scene is flat; then smooth away folds
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = ((xx - centre[0]) * ex[0] + (yy - centre[1]) * ex[1]) / (1.3 * iod)
    v = ((xx - centre[0]) * ey[0] + (yy - centre[1]) * ey[1]) / (1.55 * iod)
    z = np.where(u**2 + v**2 < 1.0, np.maximum(z, _BACK), _BACK)
    z = cv2.GaussianBlur(z, (0, 0), 0.07 * iod)
    return z * np.float32(iod)


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``pitch`` about the image's x axis, then ``yaw`` about its y axis
    (degrees; positive yaw turns the face towards the image's left, positive pitch nods it
    down), in image coordinates (x right, y down, z towards the camera)."""
    a, b = np.radians([yaw, pitch])
    ry = np.array([[np.cos(a), 0.0, -np.sin(a)], [0.0, 1.0, 0.0], [np.sin(a), 0.0, np.cos(a)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), np.sin(b)], [0.0, -np.sin(b), np.cos(b)]])
    return ry @ rx


def _turn(
    points: np.ndarray, depth: np.ndarray, centre: np.ndarray, iod: float, yaw: float, pitch: float
) -> np.ndarray:
    """Where ``(N, 2)`` image points of depth ``(N,)`` (pixels) go when the head turns about a
    point half an IOD behind the eyes at ``centre``, seen from 5 IOD in perspective."""
    pivot = -0.5 * iod
    distance = 5.0 * iod  # camera to pivot: a webcam at arm's length
    z = depth - pivot
    # the photo is a perspective view already: back to the head's 3D points, turn, project
    p = np.concatenate([(points - centre) * ((distance - z) / distance)[:, None], z[:, None]], axis=1)
    q = p @ _rotation(yaw, pitch).T
    f = distance / np.maximum(distance - q[:, 2], 0.2 * distance)
    return centre + q[:, :2] * f[:, None]


def _turn_maps(
    landmarks: np.ndarray, shape: tuple[int, int], yaw: float, pitch: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cv2.remap`` maps that turn the head of a canvas image by ``yaw`` and ``pitch``, and the
    turned landmarks.

    The forward motion of every pixel is known (:func:`_turn` with :func:`_depth_map`); the
    maps invert it by fixed-point iteration (``p = q − D(p)``), which converges because the
    smoothed relief never folds.

    Returns:
        ``map_x, map_y`` (``(H, W)`` float32 source coordinates of each output pixel) and the
        ``(68, 2)`` turned landmarks.
    """
    h, w = shape
    _, _, iod = _axes(landmarks)
    centre = landmarks[[36, 45, 8]].mean(axis=0)
    depth = _depth_map(landmarks, shape)
    # the motion is smooth: computed every _STEP pixels, interpolated in between
    gy, gx = np.mgrid[0:h:_STEP, 0:w:_STEP].astype(np.float32)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=-1)
    moved = _turn(grid, depth[::_STEP, ::_STEP].ravel(), centre, iod, yaw, pitch)
    coarse = (moved - grid).reshape(*gx.shape, 2).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    disp = cv2.remap(coarse, xx / _STEP, yy / _STEP, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    px, py = xx.copy(), yy.copy()
    for _ in range(12):
        d = cv2.remap(disp, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        px, py = xx - d[..., 0], yy - d[..., 1]
    lm_depth = cv2.remap(
        depth, landmarks[:, 0:1].astype(np.float32), landmarks[:, 1:2].astype(np.float32), cv2.INTER_LINEAR
    )[:, 0]
    turned = _turn(landmarks, lm_depth, centre, iod, yaw, pitch)
    return px, py, turned


def _relight(
    image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray, direction: np.ndarray, strength: float
) -> np.ndarray:
    """Light the face's relief from ``direction`` (unit ``(3,)``, image axes, z towards the
    camera; ``(0, -1, 0.4)`` is overhead light): every pixel of the head (``mask``) is scaled
    by the ratio of its Lambertian shading under the new light to that under frontal light,
    so brows, nose, lips and chin cast their soft shadows on a photo lit from the front.
    ``strength`` (0–1) mixes the change in."""
    depth = _depth_map(landmarks, image.shape[:2])
    _, _, iod = _axes(landmarks)
    depth = cv2.GaussianBlur(depth, (0, 0), 0.05 * iod)
    gy, gx = np.gradient(depth)
    norm = np.sqrt(gx**2 + gy**2 + 1.0)
    nx, ny, nz = -gx / norm, -gy / norm, 1.0 / norm
    lit = np.clip(nx * direction[0] + ny * direction[1] + nz * direction[2], 0.0, None)
    ratio = np.clip((0.3 + lit) / (0.3 + nz), 0.55, 1.3)
    ratio = 1.0 + strength * mask * (ratio - 1.0)
    return image * ratio[..., None].astype(np.float32)
