"""Rendering: an identity showing AUs at given intensities, under nuisances, as one image
(:func:`render`) or as the frames of a video with a smoothly moving head
(:func:`render_sequence`), with the rendered face's exact landmarks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

import cv2
import numpy as np

from .appearance import _draw_appearance, _Shading
from .canvas import CANVAS, _over
from .geometry import REVISION, check_revision, displace_landmarks
from .head import _relight, _turn_maps
from .identity import Identity
from .interiors import _eyes, _mouth_interior
from .looks import _draw_look, _occlude
from .nuisance import (
    Nuisance,
    _degrade,
    _photometric,
    _photos,
    _pose_matrix,
    _project,
    sample_nuisance,
)
from .sampling import _eased
from .warp import _warp_image

#: The most a blink moves the image by warping (intensity): beyond it lids are drawn.
_WARP_BLINK = 3.0


def render(
    identity: Identity,
    intensities: Mapping[int, float],
    rng: np.random.Generator | None = None,
    nuisance: bool | Nuisance = True,
    size: int = CANVAS,
    sides: Mapping[int, tuple[float, float]] | None = None,
    revision: int = REVISION,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``identity`` showing the AUs at ``intensities``.

    Args:
        identity: The neutral face.
        intensities: AU number → intensity in [0, 5] (continuous; absent AUs are 0).
        rng: Randomness of the strokes' details and of the nuisances; a fixed default if None.
        nuisance: ``True`` for random nuisances (:func:`sample_nuisance`), a :class:`Nuisance`
            to use given ones, ``False`` for none: the face stays in the identity's canvas
            (only resized to ``size``), so all-zero intensities give back the neutral face
            (with its glasses or fringe, if it wears them).
        size: Side of the square output image.
        sides: AU number → ``(left, right)`` factors of an asymmetric action
            (:func:`~.sampling.sample_sides`); the intensity is the stronger side's.
        revision: The generator's revision (:data:`~.geometry.REVISION`, the latest, unless an
            older data set is to be rendered again).

    Returns:
        image: ``(size, size, 3)`` uint8 RGB.
        landmarks: ``(68, 2)`` float64 exact landmarks of the rendered face in ``image``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    revision = check_revision(revision)
    for au, value in intensities.items():
        if not 0.0 <= float(value) <= 5.0:
            raise ValueError(f"AU{au} intensity {value} is outside [0, 5]")
    nz = sample_nuisance(rng) if nuisance is True else (nuisance or None)
    neutral = identity.landmarks
    lms = displace_landmarks(neutral, intensities, sides, revision)
    active = {au: float(v) / 5.0 for au, v in intensities.items() if v > 0}
    look = identity.look
    plain = look.glasses is None and look.fringe is None
    if not active and nz is None and size == identity.image.shape[0] and plain:
        return identity.image.copy(), neutral.copy()

    image = identity.image
    if nz is not None and nz.background is not None:
        image = _over(image.astype(np.float32), 1.0 - identity.mask, nz.background.astype(np.float32)).astype(np.uint8)
    canvas = image.astype(np.float32)
    if active:
        # a warp cannot fold the lids onto one line: it takes them at most _WARP_BLINK of
        # the way, and the eyes are drawn closed over it
        warp_lms = lms
        if intensities.get(45, 0.0) > _WARP_BLINK:
            warp_lms = displace_landmarks(neutral, {**intensities, 45: _WARP_BLINK}, sides, revision)
        canvas = _warp_image(image, neutral, warp_lms).astype(np.float32)
        canvas = _mouth_interior(canvas, neutral, lms, rng)
        canvas = _eyes(canvas, image, neutral, lms, warp_lms)
        paint = _Shading(lms, canvas.shape[:2], identity.creases)
        _draw_appearance(paint, active, rng, sides, revision)
        canvas = paint.apply(canvas)
    canvas = _draw_look(canvas, lms, look, rng, identity.mask)
    if nz is not None:
        if nz.occluder:
            canvas = _occlude(canvas, lms, rng, _photos())
        x, y, z, strength = nz.relight
        if strength > 0:
            canvas = _relight(canvas, lms, identity.mask, np.array([x, y, z]), strength)
        canvas = _photometric(canvas, nz)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)

    if nz is not None:
        return _pose(image, lms, nz, size, rng)
    if size != image.shape[0]:
        interp = cv2.INTER_AREA if size < image.shape[0] else cv2.INTER_LINEAR
        lms = (lms + 0.5) * size / image.shape[0] - 0.5
        image = cv2.resize(image, (size, size), interpolation=interp)
    return image, lms


def _pose(
    image: np.ndarray, lms: np.ndarray, nz: Nuisance, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The canvas image seen by the camera: the head turned in depth (yaw, pitch), then rolled,
    scaled and shifted into a ``size`` image in one resampling, then the camera's faults."""
    matrix = _pose_matrix(nz, lms.mean(axis=0), size)
    if abs(nz.yaw) < 0.5 and abs(nz.pitch) < 0.5:
        out = cv2.warpPerspective(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        return _degrade(out, nz, rng), _project(lms, matrix)
    map_x, map_y, turned = _turn_maps(lms, image.shape[:2], nz.yaw, nz.pitch)
    inverse = np.linalg.inv(matrix)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    canvas_pts = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    canvas_pts = _project(canvas_pts, inverse).astype(np.float32).reshape(size, size, 2)
    src_x = cv2.remap(map_x, canvas_pts[..., 0], canvas_pts[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    src_y = cv2.remap(map_y, canvas_pts[..., 0], canvas_pts[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # beyond the canvas the turn's maps are extended linearly (replicated maps would smear)
    outside = (
        (canvas_pts[..., 0] < 0)
        | (canvas_pts[..., 0] > image.shape[1] - 1)
        | (canvas_pts[..., 1] < 0)
        | (canvas_pts[..., 1] > image.shape[0] - 1)
    )
    src_x = np.where(outside, canvas_pts[..., 0], src_x)
    src_y = np.where(outside, canvas_pts[..., 1], src_y)
    out = cv2.remap(image, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return _degrade(out, nz, rng), _project(turned, matrix)


def render_sequence(
    identity: Identity,
    curves: Mapping[int, np.ndarray],
    rng: np.random.Generator | None = None,
    nuisance: bool | Nuisance = True,
    size: int = CANVAS,
    sides: Mapping[int, tuple[float, float]] | None = None,
    revision: int = REVISION,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render frames of a video: intensities follow ``curves``, the head moves smoothly.

    One :class:`Nuisance` (scene, camera, start pose) holds for the whole sequence; with
    ``nuisance=True`` the head's roll, yaw, pitch, scale and position then drift along
    smooth random paths, and noise is drawn anew for every frame.

    Args:
        identity: The neutral face.
        curves: AU number → ``(T,)`` intensities over time (all of the same length T), e.g.
            from :func:`intensity_curves`.
        rng, nuisance, size, sides, revision: As for :func:`render` (one scene and one
            asymmetry for the whole sequence).

    Yields:
        ``(image, landmarks)`` for each of the T frames, as :func:`render` returns them.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    lengths = {len(np.asarray(c)) for c in curves.values()}
    if len(lengths) != 1:
        raise ValueError(f"all curves must have the same length, got lengths {sorted(lengths)}")
    n = lengths.pop()
    values = {au: np.asarray(c, dtype=np.float64) for au, c in curves.items()}
    base = sample_nuisance(rng) if nuisance is True else (nuisance or None)
    if nuisance is True:  # roll, yaw, pitch, scale, shift x, shift y drift from the start
        keys = np.concatenate([np.zeros((1, 6)), rng.uniform(-1, 1, (n // 6 + 2, 6))])
        drift = _eased(keys, n, every=6) * [4.0, 6.0, 4.0, 0.03, 0.015, 0.015]
    for t in range(n):
        frame_nz = base
        if nuisance is True:
            d = drift[t]
            frame_nz = replace(
                base,
                roll=float(np.clip(base.roll + d[0], -20, 20)),
                yaw=float(np.clip(base.yaw + d[1], -38, 38)),
                pitch=float(np.clip(base.pitch + d[2], -30, 30)),
                scale=base.scale * (1.0 + d[3]),
                shift=(base.shift[0] + d[4], base.shift[1] + d[5]),
            )
        frame = {au: float(v[t]) for au, v in values.items()}
        yield render(identity, frame, rng, frame_nz or False, size, sides, revision)
