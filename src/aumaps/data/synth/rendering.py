"""Rendering: an identity showing AUs at given intensities, under nuisances, as one image
(:func:`render`) or as the frames of a video with a smoothly moving head
(:func:`render_sequence`), with the rendered face's exact landmarks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

import cv2
import numpy as np

from .appearance import _draw_appearance, _mouth_interior, _Shading
from .canvas import CANVAS, _over
from .geometry import displace_landmarks
from .identity import Identity
from .nuisance import Nuisance, _degrade, _photometric, _pose_matrix, _project, sample_nuisance
from .sampling import _eased
from .warp import _warp_image


def render(
    identity: Identity,
    intensities: Mapping[int, float],
    rng: np.random.Generator | None = None,
    nuisance: bool | Nuisance = True,
    size: int = CANVAS,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``identity`` showing the AUs at ``intensities``.

    Args:
        identity: The neutral face.
        intensities: AU number → intensity in [0, 5] (continuous; absent AUs are 0).
        rng: Randomness of the strokes' details and of the nuisances; a fixed default if None.
        nuisance: ``True`` for random nuisances (:func:`sample_nuisance`), a :class:`Nuisance`
            to use given ones, ``False`` for none: the face stays in the identity's canvas
            (only resized to ``size``), so all-zero intensities give back the neutral face.
        size: Side of the square output image.

    Returns:
        image: ``(size, size, 3)`` uint8 RGB.
        landmarks: ``(68, 2)`` float64 exact landmarks of the rendered face in ``image``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    for au, value in intensities.items():
        if not 0.0 <= float(value) <= 5.0:
            raise ValueError(f"AU{au} intensity {value} is outside [0, 5]")
    nz = sample_nuisance(rng) if nuisance is True else (nuisance or None)
    neutral = identity.landmarks
    lms = displace_landmarks(neutral, intensities)
    active = {au: float(v) / 5.0 for au, v in intensities.items() if v > 0}
    if not active and nz is None and size == identity.image.shape[0]:
        return identity.image.copy(), neutral.copy()

    image = identity.image
    if nz is not None and nz.background is not None:
        image = _over(
            image.astype(np.float32), 1.0 - identity.mask, nz.background.astype(np.float32)
        ).astype(np.uint8)
    if active:
        image = _warp_image(image, neutral, lms)
    canvas = image.astype(np.float32)
    if active:
        canvas = _mouth_interior(canvas, neutral, lms, rng)
        paint = _Shading(lms, canvas.shape[:2], identity.creases)
        _draw_appearance(paint, active, rng)
        canvas = paint.apply(canvas)
    if nz is not None:
        canvas = _photometric(canvas, nz)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)

    if nz is not None:
        matrix = _pose_matrix(nz, neutral.mean(axis=0), size)
        image = cv2.warpPerspective(
            image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
        return _degrade(image, nz, rng), _project(lms, matrix)
    if size != image.shape[0]:
        interp = cv2.INTER_AREA if size < image.shape[0] else cv2.INTER_LINEAR
        lms = (lms + 0.5) * size / image.shape[0] - 0.5
        image = cv2.resize(image, (size, size), interpolation=interp)
    return image, lms


def render_sequence(
    identity: Identity,
    curves: Mapping[int, np.ndarray],
    rng: np.random.Generator | None = None,
    nuisance: bool | Nuisance = True,
    size: int = CANVAS,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render frames of a video: intensities follow ``curves``, the head moves smoothly.

    One :class:`Nuisance` (scene, camera, start pose) holds for the whole sequence; with
    ``nuisance=True`` the head's roll, yaw, pitch, scale and position then drift along
    smooth random paths, and noise is drawn anew for every frame.

    Args:
        identity: The neutral face.
        curves: AU number → ``(T,)`` intensities over time (all of the same length T), e.g.
            from :func:`intensity_curves`.
        rng, nuisance, size: As for :func:`render`.

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
        drift = _eased(keys, n, every=6) * [4.0, 4.0, 3.0, 0.03, 0.015, 0.015]
    for t in range(n):
        frame_nz = base
        if nuisance is True:
            d = drift[t]
            frame_nz = replace(
                base,
                roll=float(np.clip(base.roll + d[0], -20, 20)),
                yaw=float(np.clip(base.yaw + d[1], -15, 15)),
                pitch=float(np.clip(base.pitch + d[2], -8, 8)),
                scale=base.scale * (1.0 + d[3]),
                shift=(base.shift[0] + d[4], base.shift[1] + d[5]),
            )
        frame = {au: float(v[t]) for au, v in values.items()}
        yield render(identity, frame, rng, frame_nz or False, size)
