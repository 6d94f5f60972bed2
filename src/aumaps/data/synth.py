"""Synthetic faces with known Action Unit intensities and known AU locations.

No licensed AU data set ships with aumaps, so this module makes its own: faces whose AU
intensities are chosen, not annotated, and whose 68 landmarks are known exactly after every
deformation. It serves to train small demonstration models and to test the pipeline end to
end.

How a sample is made (all in a 256×256 *canvas* that holds the whole head):

1. **Identity** (:class:`Identity`, :func:`make_identity`, :func:`neutral_faces`): a neutral
   face image with its 68 landmarks. Either a variant of a real photo that ships with the
   dependencies (:func:`real_faces`: scikit-image's astronaut and matplotlib's Grace Hopper,
   found once by dlib) with its face shape warped, its skin tone changed and possibly
   mirrored (:func:`vary_identity`), or a face drawn from scratch (:func:`procedural_face`).
2. **AU geometry** (:data:`DISPLACEMENTS`, :func:`displace_landmarks`): each AU moves a few
   landmarks by a fixed vector per intensity unit, in inter-ocular distances (IOD) along the
   face's own axes; several AUs add up. The image follows through a smooth thin-plate-spline
   warp through the landmarks and a fixed ring of anchors around the head.
3. **AU appearance** (furrows, wrinkles, dimples, bulges, the mouth's interior): blurred dark
   and light strokes whose strength grows with the intensity, so that intensity is not
   readable from the landmarks alone and AUs that share centres (AU12/AU14) look different.
4. **Nuisances** (:class:`Nuisance`, :func:`sample_nuisance`): background replacement,
   lighting gradient, colour cast, contrast and gamma, then a head pose (roll, yaw- and
   pitch-like plane rotation, scale, shift) applied to image and landmarks together, then
   blur, noise and JPEG compression.

Intensities follow expression prototypes mixed with independent activations
(:func:`sample_intensities`) or smooth curves over time (:func:`intensity_curves`,
:func:`render_sequence`); :func:`make_dataset` writes a data set with a manifest in the
format of ``docs/data-format.md``.

Limitations, by construction: the real base photos are not truly neutral (the astronaut's
broad smile is undone geometrically and her mouth painted shut, but traces remain, and
count as intensity 0); identities derived from one photo share its skin texture; drawn faces
are cartoons; AU geometry is symmetric; head pose is a plane's, not a head's. The astronaut
and the background photos come from scikit-image's bundled data: without scikit-image, real
identities are Grace Hopper's variants only and backgrounds are synthetic.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..align import TEMPLATE_68
from ..aus import CATALOGUE, MIRROR_68, column_name, resolve_aus
from .manifest import LANDMARK_COLUMNS, assign_splits

__all__ = [
    "CANVAS",
    "DISPLACEMENTS",
    "PROTOTYPES",
    "Identity",
    "Nuisance",
    "REAL_FACES",
    "displace_landmarks",
    "intensity_curves",
    "make_dataset",
    "make_identity",
    "neutral_faces",
    "procedural_face",
    "real_faces",
    "render",
    "render_sequence",
    "sample_intensities",
    "sample_nuisance",
    "vary_identity",
]

#: Side of the square canvas that identities live in and AUs are rendered in, in pixels.
CANVAS = 256
#: Where a canonical face sits in the canvas: :data:`aumaps.align.TEMPLATE_68` scaled by
#: ``_FACE_SCALE`` (IOD ≈ 66 px) about its centre, which is moved to ``_FACE_CENTRE``, so
#: that hair, forehead, neck and a margin for head pose fit.
_FACE_SCALE = 0.68
_FACE_CENTRE = np.array([128.0, 136.0])
_CANONICAL_68 = (TEMPLATE_68 - TEMPLATE_68.mean(axis=0)) * _FACE_SCALE + _FACE_CENTRE

# ---------------------------------------------------------------------------------------
# AU geometry

#: Landmarks on the image-left half of a frontal face; their mirrors (``MIRROR_68``) are on
#: the right half, and the rest (nose ridge, lip and chin centres) on the midline.
_LEFT_HALF = frozenset(
    (*range(0, 8), *range(17, 22), 31, 32, *range(36, 42), 48, 49, 50, 58, 59, 60, 61, 67)
)


def _symmetric(half: Mapping[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Expand a half-face displacement spec into both halves.

    ``half`` names image-left and midline landmarks with ``(out, dy)``: ``out`` away from the
    face's midline, ``dy`` down the face. The result holds ``(dx, dy)`` along the face's axes
    (x from landmark 36 towards 45) for every landmark moved, sorted by index.
    """
    full: dict[int, tuple[float, float]] = {}
    for index, (out, dy) in half.items():
        if index in _LEFT_HALF:
            full[index] = (-out, dy)
            full[int(MIRROR_68[index])] = (out, dy)
        elif MIRROR_68[index] == index:
            if out:
                raise ValueError(f"midline landmark {index} cannot move sideways symmetrically")
            full[index] = (0.0, dy)
        else:
            raise ValueError(f"name image-left landmarks only, got {index}")
    return dict(sorted(full.items()))


#: Landmark displacement of each AU per intensity unit: ``DISPLACEMENTS[au][i] = (dx, dy)``
#: moves landmark ``i`` by ``I·(dx·ex + dy·ey)·IOD`` at intensity ``I``, where ``ex`` is the
#: unit vector from landmark 36 to 45, ``ey`` is ``ex`` turned 90° towards the chin and IOD is
#: the neutral face's inter-ocular distance (36–45). Displacements of several AUs add up.
#: The outer eye corners 36 and 45 never move, so the face's axes and IOD are the neutral
#: face's whatever the expression. Values at intensity 5 stay within about 0.2 IOD, in line
#: with the amplitudes of posed expressions; the directions follow the FACS descriptions
#: (comments give the appearance changes that the geometry cannot show, which
#: :func:`render` draws).
# fmt: off
DISPLACEMENTS: dict[int, dict[int, tuple[float, float]]] = {
    # Inner brow raiser: inner brow ends up, the rest of the brow less so.
    1: _symmetric({21: (0.0, -0.030), 20: (0.0, -0.022), 19: (0.0, -0.012), 18: (0.0, -0.005)}),
    # Outer brow raiser: the outer two-thirds of each brow arch up.
    2: _symmetric({17: (0.0, -0.020), 18: (0.0, -0.028), 19: (0.0, -0.022), 20: (0.0, -0.010)}),
    # Brow lowerer: brows down and drawn together; the upper lids follow a little.
    4: _symmetric({
        21: (-0.012, 0.020), 20: (-0.008, 0.018), 19: (-0.004, 0.014), 18: (0.0, 0.010),
        17: (0.0, 0.006), 37: (0.0, 0.004), 38: (0.0, 0.004),
    }),
    # Upper lid raiser: upper lids retract.
    5: _symmetric({37: (0.0, -0.012), 38: (0.0, -0.012)}),
    # Cheek raiser: cheeks lift and bulge, pushing the lower lids up; the eyes narrow and the
    # outer brows come down a little (crow's feet, infraorbital furrow and bulge drawn).
    6: _symmetric({
        40: (0.0, -0.006), 41: (0.0, -0.010), 37: (0.0, 0.003), 38: (0.0, 0.002),
        1: (0.004, -0.006), 2: (0.006, -0.006), 17: (0.0, 0.004),
    }),
    # Lid tightener: lower lids rise and straighten, upper lids come down slightly.
    7: _symmetric({40: (0.0, -0.012), 41: (0.0, -0.010), 37: (0.0, 0.004), 38: (0.0, 0.004)}),
    # Nose wrinkler: nose wings and tip up, upper lip up a little, brows pulled down
    # (nose-bridge wrinkles drawn).
    9: _symmetric({
        31: (0.003, -0.016), 32: (0.001, -0.014), 33: (0.0, -0.012), 30: (0.0, -0.006),
        29: (0.0, -0.003), 21: (-0.004, 0.010), 20: (0.0, 0.008), 19: (0.0, 0.005),
        50: (0.0, -0.008), 51: (0.0, -0.008), 61: (0.0, -0.006), 62: (0.0, -0.006),
        40: (0.0, -0.004), 41: (0.0, -0.004),
    }),
    # Upper lip raiser: the upper lip's centre rises most, the nose wings a little
    # (nasolabial furrow deepened beside the nose).
    10: _symmetric({
        51: (0.0, -0.022), 50: (0.0, -0.020), 49: (0.0, -0.014), 48: (0.0, -0.006),
        62: (0.0, -0.018), 61: (0.0, -0.016), 60: (0.0, -0.010), 31: (0.002, -0.006),
        32: (0.0, -0.004), 33: (0.0, -0.003),
    }),
    # Lip corner puller: corners pulled up and out along the zygomatic line, the lips next to
    # them partly, the lower cheek a little (nasolabial furrow, cheek bulge drawn).
    12: _symmetric({
        48: (0.018, -0.026), 60: (0.016, -0.022), 49: (0.010, -0.014), 59: (0.010, -0.016),
        61: (0.006, -0.010), 67: (0.006, -0.010), 50: (0.004, -0.006), 58: (0.004, -0.006),
        2: (0.004, -0.004), 3: (0.004, -0.004),
    }),
    # Dimpler: corners tightened inwards and slightly up (dimples beside them drawn).
    14: _symmetric({
        48: (-0.012, -0.006), 60: (-0.010, -0.004), 49: (-0.005, -0.002), 59: (-0.005, -0.002),
    }),
    # Lip corner depressor: corners pulled down, the lips next to them partly.
    15: _symmetric({
        48: (0.004, 0.022), 60: (0.002, 0.016), 59: (0.002, 0.012), 49: (0.0, 0.010),
        67: (0.0, 0.008), 61: (0.0, 0.006), 58: (0.0, 0.004),
    }),
    # Chin raiser: chin boss and lower lip pushed up, the closed mouth's inner lips with them,
    # the corners dip (chin wrinkling and the furrow under the lower lip drawn).
    17: _symmetric({
        8: (0.0, -0.016), 7: (0.0, -0.010), 6: (0.0, -0.005), 57: (0.0, -0.016),
        58: (0.0, -0.014), 59: (0.0, -0.008), 66: (0.0, -0.010), 67: (0.0, -0.010),
        62: (0.0, -0.010), 61: (0.0, -0.008), 51: (0.0, -0.006), 50: (0.0, -0.004),
        48: (0.0, 0.004),
    }),
    # Lip stretcher: corners pulled sideways, the lips flatten.
    20: _symmetric({
        48: (0.024, 0.004), 60: (0.020, 0.002), 49: (0.012, 0.0), 59: (0.012, 0.002),
        61: (0.006, 0.0), 67: (0.006, 0.0), 50: (0.004, 0.0), 58: (0.004, 0.0),
        51: (0.0, 0.004),
    }),
    # Lip tightener: lip reds narrow, the mouth narrows.
    23: _symmetric({
        51: (0.0, 0.008), 50: (0.0, 0.008), 57: (0.0, -0.008), 58: (0.0, -0.008),
        48: (-0.008, 0.0), 49: (-0.004, 0.002), 59: (-0.004, -0.002),
    }),
    # Lip pressor: lips pressed together (bulges above and below drawn).
    24: _symmetric({
        51: (0.0, 0.010), 50: (0.0, 0.010), 49: (0.0, 0.006), 57: (0.0, -0.010),
        58: (0.0, -0.010), 59: (0.0, -0.006), 48: (-0.004, 0.0),
    }),
    # Lips part: inner lips separate, the lower lip moves most (mouth interior drawn).
    25: _symmetric({
        62: (0.0, -0.012), 61: (0.0, -0.010), 51: (0.0, -0.006), 50: (0.0, -0.004),
        66: (0.0, 0.024), 67: (0.0, 0.020), 57: (0.0, 0.018), 58: (0.0, 0.016),
        59: (0.0, 0.010),
    }),
    # Jaw drop: chin and lower jaw line down with the lower lip.
    26: _symmetric({
        8: (0.0, 0.040), 7: (0.0, 0.036), 6: (0.0, 0.028), 5: (0.0, 0.020),
        4: (0.0, 0.012), 3: (0.0, 0.006), 57: (0.0, 0.030), 58: (0.0, 0.028),
        59: (0.0, 0.020), 66: (0.0, 0.026), 67: (0.0, 0.026), 48: (0.0, 0.010),
        60: (0.0, 0.010),
    }),
}
# fmt: on

_AU_ORDER = tuple(CATALOGUE)
_DISPLACEMENT_ARRAY = np.zeros((len(_AU_ORDER), 68, 2))
for _a, _au in enumerate(_AU_ORDER):
    for _i, _d in DISPLACEMENTS[_au].items():
        _DISPLACEMENT_ARRAY[_a, _i] = _d


def _axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The face's axes: ``ex`` (36 → 45), ``ey`` (``ex`` turned towards the chin), IOD."""
    ex = landmarks[45] - landmarks[36]
    iod = float(np.hypot(*ex))
    ex = ex / iod
    return ex, np.array([-ex[1], ex[0]]), iod


#: ``(upper, lower)`` landmarks that strong AU combinations must not make cross: the lids
#: of each eye and the two edges of each lip. They keep at least ``_MIN_GAP`` of their
#: neutral distance (eyes close to a slit, lips thin to a line).
_NO_CROSSING = (
    (37, 41), (38, 40), (43, 47), (44, 46),
    (50, 61), (51, 62), (52, 63), (67, 58), (66, 57), (65, 56),
)  # fmt: skip
_MIN_GAP = 0.25


def displace_landmarks(landmarks: np.ndarray, intensities: Mapping[int, float]) -> np.ndarray:
    """Move neutral landmarks as the AUs at ``intensities`` do (:data:`DISPLACEMENTS`).

    The AUs' displacements add up; where a strong combination would make an eye's lids or a
    lip's edges cross (AU6 + AU7 + AU9 on the lower lids, AU23 + AU24 on the lips), the two
    are pushed apart symmetrically to a quarter of their neutral distance.

    Args:
        landmarks: ``(68, 2)`` neutral landmarks, x, y in pixels.
        intensities: AU number → intensity in [0, 5] (absent AUs are 0).

    Returns:
        ``(68, 2)`` float64 deformed landmarks.
    """
    neutral = np.asarray(landmarks, dtype=np.float64)
    levels = np.array([float(intensities.get(au, 0.0)) for au in _AU_ORDER])
    unknown = set(intensities) - set(_AU_ORDER)
    if unknown:
        raise ValueError(f"AUs {sorted(unknown)} are not in the catalogue")
    offsets = np.tensordot(levels, _DISPLACEMENT_ARRAY, axes=1)  # (68, 2) in face units
    ex, ey, iod = _axes(neutral)
    lms = neutral + iod * (offsets[:, :1] * ex + offsets[:, 1:] * ey)
    for upper, lower in _NO_CROSSING:
        floor = _MIN_GAP * max(float((neutral[lower] - neutral[upper]) @ ey), 0.0)
        short = floor - float((lms[lower] - lms[upper]) @ ey)
        if short > 0:
            lms[upper] -= 0.5 * short * ey
            lms[lower] += 0.5 * short * ey
    return lms


# ---------------------------------------------------------------------------------------
# Dense warp through landmarks (thin-plate spline)

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
    ring = centre + iod * (
        1.25 * np.cos(angles)[:, None] * ex + 1.45 * np.sin(angles)[:, None] * ey
    )
    h, w = shape
    xs, ys = np.linspace(0, w - 1, 4), np.linspace(0, h - 1, 4)
    border = [(x, y) for x in xs for y in (ys[0], ys[-1])] + [
        (x, y) for y in ys[1:-1] for x in (xs[0], xs[-1])
    ]
    return np.concatenate([ring, np.array(border)])


def _warp_maps(
    src: np.ndarray, dst: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
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
    map_x, map_y = _warp_maps(
        np.concatenate([src_lms, anchors]), np.concatenate([dst_lms, anchors]), image.shape[:2]
    )
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


# ---------------------------------------------------------------------------------------
# Identities


@dataclass(frozen=True, eq=False)
class Identity:
    """A neutral face: the starting point of every rendering of one subject.

    Attributes:
        image: ``(CANVAS, CANVAS, 3)`` uint8 RGB neutral face, head roughly centred.
        landmarks: ``(68, 2)`` float64 neutral landmarks in ``image``, x, y.
        subject: Subject id (distinct identities have distinct ids).
        source: What it was made from: a :data:`REAL_FACES` name or ``"procedural"``.
        mask: ``(CANVAS, CANVAS)`` float32 in [0, 1]: the head, hair and neck (1) as opposed
            to the background (0), feathered.
        creases: How deeply this face folds: scales the strength of the drawn furrows and
            wrinkles (about 0.7–1.3).
    """

    image: np.ndarray
    landmarks: np.ndarray
    subject: str
    source: str
    mask: np.ndarray
    creases: float = 1.0


def _head_polygon(landmarks: np.ndarray, forehead: float = 0.8) -> np.ndarray:
    """Outline of the face: jaw line 0–16 then a forehead arc ``forehead`` IOD above the
    brows at the middle, ``(K, 2)``."""
    ex, ey, iod = _axes(landmarks)
    brows = landmarks[26:16:-1]  # right to left, continuing the jaw line
    t = np.linspace(1.0, -1.0, len(brows))
    rise = forehead * np.sqrt(np.clip(1.0 - 0.75 * t**2, 0.0, None))
    top = brows - iod * rise[:, None] * ey
    return np.concatenate([landmarks[:17], top])


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


def _head_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Feathered ``(H, W)`` float32 mask of the face, forehead and neck for a real photo."""
    ex, ey, iod = _axes(landmarks)
    mask = _fill(shape, _head_polygon(landmarks, forehead=0.75))
    jaw = landmarks[[3, 13]]
    neck = np.array(
        [
            jaw[0] + 0.1 * iod * ex,
            jaw[1] - 0.1 * iod * ex,
            jaw[1] - 0.1 * iod * ex + 3 * iod * ey,
            jaw[0] + 0.1 * iod * ex + 3 * iod * ey,
        ]
    )
    _fill(shape, neck, canvas=mask)
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    return cv2.GaussianBlur(grown, (0, 0), 0.05 * iod)


def _load_astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _load_grace_hopper() -> np.ndarray:
    import matplotlib

    from ..images import read_image

    return read_image(Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))


#: Real face photos that ship with aumaps' dependencies (scikit-image's data has no other
#: frontal human face; matplotlib's sample data neither): name → loader of the RGB image.
REAL_FACES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _load_astronaut,
    "grace_hopper": _load_grace_hopper,
}


def _to_canvas(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A face brought to the canonical place in the canvas by a similarity transform (a
    photo that must shrink is first reduced by area averaging, against aliasing)."""
    target = _CANONICAL_68.astype(np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), target)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    if scale < 1.0:
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        factor = np.array(small.shape[1::-1]) / np.array(image.shape[1::-1])
        image, landmarks = small, (landmarks + 0.5) * factor - 0.5
        matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), target)
    warped = cv2.warpAffine(
        image, matrix, (CANVAS, CANVAS), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101
    )
    return warped, landmarks @ matrix[:, :2].T + matrix[:, 2]


@functools.cache
def real_faces() -> tuple[Identity, ...]:
    """The real neutral-ish faces of :data:`REAL_FACES` that can be loaded here, in the canvas.

    Each photo is searched once by dlib (:class:`aumaps.landmarks.FaceLandmarker`); its first
    face and landmarks are brought to the canonical place by a similarity transform. A photo
    whose loader fails (scikit-image not installed) is left out.

    Returns:
        One :class:`Identity` per photo, ``subject`` and ``source`` set to its name.
    """
    from ..landmarks import FaceLandmarker

    landmarker = FaceLandmarker(max_faces=1)
    found = []
    for name, load in REAL_FACES.items():
        try:
            photo = load()
        except ImportError:
            continue
        faces = landmarker(photo)
        if not faces:
            raise RuntimeError(f"dlib found no face in the bundled photo {name!r}")
        image, lms = _to_canvas(photo, faces[0].landmarks)
        if name in _NEUTRALISE:
            image, lms = _neutralise(image, lms, _NEUTRALISE[name])
        found.append(Identity(image, lms, name, name, _head_mask(lms, image.shape[:2])))
    return tuple(found)


#: AUs that a real photo shows already, undone geometrically to bring it nearer to neutral
#: (the astronaut smiles broadly, with her teeth showing).
_NEUTRALISE: dict[str, dict[int, float]] = {"astronaut": {12: -2.5, 6: -1.5, 25: -2.0}}


def _neutralise(
    image: np.ndarray, landmarks: np.ndarray, undo: Mapping[int, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Move a photo's landmarks against the AUs ``undo`` names, warp it along, and close the
    mouth: the gap between the inner lips is painted in the lips' colour with a dark line
    where they meet, and the inner-lip landmarks are put on that line.

    Returns:
        ``(image, landmarks)``, the landmarks ``(68, 2)``.
    """
    lms = displace_landmarks(landmarks, undo)
    image = _warp_image(image, landmarks, lms)
    shape = image.shape[:2]
    inner = _fill(shape, lms[60:68])
    lip_colour = image[(_fill(shape, lms[48:60]) > 0.5) & (inner < 0.5)].mean(axis=0)
    gap = cv2.GaussianBlur(cv2.dilate(inner, np.ones((3, 3), np.uint8)), (0, 0), 1.0)
    closed = _over(image.astype(np.float32), gap, lip_colour)
    meet = (lms[[60, 61, 62, 63, 64]] + lms[[60, 67, 66, 65, 64]]) / 2
    line = 0.6 * cv2.GaussianBlur(_stroke(shape, meet), (0, 0), 0.7)
    closed = _over(closed, line, lip_colour * 0.4)
    lms[[61, 62, 63]] = meet[1:4]
    lms[[67, 66, 65]] = meet[1:4]
    return np.clip(closed + 0.5, 0, 255).astype(np.uint8), lms


def _shape_offsets(
    landmarks: np.ndarray, rng: np.random.Generator, spread: float = 1.0
) -> np.ndarray:
    """Random per-identity landmark offsets (pixels, ``(68, 2)``): face width, jaw length,
    eye spacing and size, brow height, nose length and width, mouth width, height and place.
    ``spread`` scales every standard deviation."""
    ex, ey, iod = _axes(landmarks)
    g = lambda sd: rng.normal(0.0, sd * spread)  # noqa: E731 - a one-line sampler
    local = (landmarks - landmarks.mean(axis=0)) @ np.stack([ex, ey]).T / iod  # face units
    off = np.zeros((68, 2))
    jaw = np.arange(17)
    off[jaw, 0] += g(0.06) * local[jaw, 0]  # face width
    chin = np.clip(1.0 - np.abs(jaw - 8) / 6.0, 0.0, None)
    off[jaw, 1] += g(0.05) * chin  # jaw length
    eyes_and_brows = np.r_[17:27, 36:48]
    off[eyes_and_brows, 0] += g(0.025) * np.sign(local[eyes_and_brows, 0])  # eye spacing
    for eye in (np.r_[36:42], np.r_[42:48]):
        centre = local[eye].mean(axis=0)
        off[eye, 1] += g(0.12) * (local[eye, 1] - centre[1])  # eye opening
    off[17:27, 1] += g(0.025)  # brow height
    off[31:36, 1] += g(0.04)  # nose length
    off[29:31, 1] += off[31, 1] * np.array([0.4, 0.8])
    off[31:36, 0] += g(0.08) * local[31:36, 0]  # nose width
    mouth = np.r_[48:68]
    centre = local[mouth].mean(axis=0)
    off[mouth, 0] += g(0.08) * (local[mouth, 0] - centre[0])  # mouth width
    off[mouth, 1] += g(0.15) * (local[mouth, 1] - centre[1])  # lip thickness
    off[mouth, 1] += g(0.03)  # mouth height on the face
    return iod * (off[:, :1] * ex + off[:, 1:] * ey)


def _skin_tone(
    image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray, target_lab: np.ndarray
) -> np.ndarray:
    """Shift the skin colour of ``image`` towards ``target_lab`` (L*, a*, b*) inside ``mask``.

    The shift is the difference between the target and the mean colour of the lower face;
    pixels far from that colour (eyes, hair, lips) shift less.
    """
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    region = _fill(image.shape[:2], landmarks[[2, 3, 4, 5, 11, 12, 13, 14, 35, 31]]) > 0.5
    mean = lab[region].mean(axis=0)
    likeness = np.exp(-((lab - mean) ** 2).sum(-1) / (2.0 * 22.0**2))
    weight = (mask * likeness)[..., None]
    lab += weight * (target_lab - mean)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _random_skin_lab(rng: np.random.Generator) -> np.ndarray:
    """A skin colour in CIE L*a*b*, from dark to light."""
    lightness = rng.uniform(32.0, 80.0)
    return np.array(
        [lightness, rng.uniform(8.0, 20.0), rng.uniform(10.0, 28.0) - 0.05 * (lightness - 55.0)]
    )


def _mirror(
    image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal flip of a face with its landmarks renumbered (``MIRROR_68``)."""
    w = image.shape[1]
    flipped = landmarks.copy()
    flipped[:, 0] = w - 1 - flipped[:, 0]
    return (
        np.ascontiguousarray(image[:, ::-1]),
        flipped[MIRROR_68],
        np.ascontiguousarray(mask[:, ::-1]),
    )


def vary_identity(base: Identity, rng: np.random.Generator, subject: str) -> Identity:
    """A new identity made from ``base``: face shape warped, skin tone changed, maybe mirrored.

    Args:
        base: The face to start from (a real face of :func:`real_faces`).
        rng: Source of the variation.
        subject: The new identity's id.

    Returns:
        The new :class:`Identity` (``source`` kept from ``base``).
    """
    lms = base.landmarks + _shape_offsets(base.landmarks, rng)
    image = _warp_image(base.image, base.landmarks, lms)
    mask = _head_mask(lms, image.shape[:2])
    if rng.random() < 0.8:
        image = _skin_tone(image, lms, mask, _random_skin_lab(rng))
    if rng.random() < 0.5:
        image, lms, mask = _mirror(image, lms, mask)
    return Identity(image, lms, subject, base.source, mask, creases=float(rng.uniform(0.7, 1.3)))


def make_identity(index: int, seed: int = 0, procedural: float = 0.5) -> Identity:
    """Identity number ``index`` of the population that ``seed`` defines.

    It depends on ``(seed, index)`` only, so identities can be made in any order or process.

    Args:
        index: Non-negative identity number; the subject id is ``f"syn{index:04d}"``.
        seed: Population seed.
        procedural: Probability that the identity is drawn (:func:`procedural_face`) rather
            than a variant of a real photo (:func:`vary_identity`); real photos that cannot
            be loaded make it 1.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 0x1D]))
    subject = f"syn{index:04d}"
    bases = real_faces() if procedural < 1.0 else ()
    if not bases or rng.random() < procedural:
        return procedural_face(rng, subject)
    return vary_identity(bases[int(rng.integers(len(bases)))], rng, subject)


def neutral_faces(n: int, seed: int = 0, procedural: float = 0.5) -> list[Identity]:
    """``n`` distinct identities: :func:`make_identity` for indices ``0..n-1``."""
    return [make_identity(i, seed, procedural) for i in range(n)]


# ---------------------------------------------------------------------------------------
# Procedural faces

_HAIR_COLOURS = np.array(
    [[20, 16, 14], [45, 30, 22], [85, 58, 38], [140, 105, 65], [190, 160, 110], [150, 150, 148],
     [110, 45, 25]],
    np.float32,
)  # fmt: skip
_IRIS_COLOURS = np.array(
    [[70, 45, 25], [40, 28, 20], [90, 110, 130], [80, 100, 70], [110, 90, 60]], np.float32
)


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], cells: int, channels: int = 1
) -> np.ndarray:
    """Smooth random field in about [-1, 1]: ``cells``×``cells`` values upsampled cubically."""
    coarse = rng.uniform(-1.0, 1.0, (cells, cells, channels)).astype(np.float32)
    out = cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC)
    return out.reshape(*shape, channels) if channels > 1 else out.reshape(shape)


def _ellipse(
    shape: tuple[int, int], centre: np.ndarray, axes: tuple[float, float], angle: float = 0.0
) -> np.ndarray:
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


def _procedural_template() -> np.ndarray:
    """The canonical landmarks for drawn faces, with the mouth closed. dlib reads the outline
    of a drawn face about 0.06 IOD wider and 0.07 IOD higher on the sides (0.025 at the chin)
    than a real one's, so drawn faces get their jaw landmarks moved there."""
    lms = _CANONICAL_68.copy()
    ex, ey, iod = _axes(lms)
    jaw = np.arange(17)
    weight = np.clip(np.abs(jaw - 8) / 4.0, 0.35, 1.0)
    side = np.sign(jaw - 8)
    lms[jaw] += iod * (0.06 * (side * weight)[:, None] * ex - 0.07 * weight[:, None] * ey)
    meet = (lms[[61, 62, 63]] + lms[[67, 66, 65]]) / 2  # a closed mouth: the inner lips meet
    lms[[61, 62, 63]] = lms[[67, 66, 65]] = meet
    return lms


_PROCEDURAL_68 = _procedural_template()


class _FacePlan:
    """Where the parts of a drawn face go: landmarks, face axes and the ``(H, W)`` masks of
    head, ears, neck, shoulders, hair (behind the head) and the hair's front (over it)."""

    def __init__(self, lms: np.ndarray, rng: np.random.Generator) -> None:
        self.lms = lms
        self.shape = (CANVAS, CANVAS)
        self.ex, self.ey, self.iod = _axes(lms)
        self.angle = float(np.degrees(np.arctan2(self.ex[1], self.ex[0])))
        self.head = _fill(self.shape, _head_polygon(lms, forehead=rng.uniform(0.75, 0.95)))
        ear_size = self.px(0.12, 0.24)
        self.ears = sum(
            _ellipse(self.shape, self.at(lms[[a, b]].mean(0), side * 0.06), ear_size, self.angle)
            for side, a, b in ((-1, 1, 3), (1, 15, 13))
        )
        neck = [(4, 0.12, 0.0), (12, -0.12, 0.0), (12, -0.05, 3.0), (4, 0.05, 3.0)]
        self.neck = _fill(self.shape, np.array([self.at(lms[i], dx, dy) for i, dx, dy in neck]))
        shoulders = [(-0.5, 0.45), (0.5, 0.45), (1.6, 0.75), (2.2, 3.0), (-2.2, 3.0), (-1.6, 0.75)]
        outline = np.array([self.at(lms[8], dx, dy) for dx, dy in shoulders])
        self.shoulders = cv2.GaussianBlur(_fill(self.shape, outline), (0, 0), 0.08 * self.iod)
        self.hair, self.fringe = self._hair(rng)

    def at(self, point: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        """``point`` moved by ``(dx, dy)`` IOD along the face's axes."""
        return point + self.iod * (dx * self.ex + dy * self.ey)

    def px(self, *sizes: float) -> tuple[float, ...]:
        """Sizes in IOD as pixels."""
        return tuple(s * self.iod for s in sizes)

    def _hair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the hair: an ellipse over the head that falls to a random length, and its
        part above a wavy hairline, which covers the forehead."""
        centre = self.at(self.lms[[19, 24]].mean(0), dy=-0.15)
        yy, xx = np.mgrid[0 : self.shape[0], 0 : self.shape[1]].astype(np.float32)
        u = ((xx - centre[0]) * self.ex[0] + (yy - centre[1]) * self.ex[1]) / self.iod
        v = ((xx - centre[0]) * self.ey[0] + (yy - centre[1]) * self.ey[1]) / self.iod
        width, top = rng.uniform(0.95, 1.15), rng.uniform(0.85, 1.1)
        length = rng.choice([0.05, 0.3, 0.9, 1.6], p=[0.2, 0.3, 0.3, 0.2])  # cropped ... long
        below = np.maximum(v, 0.0) / length
        hair = np.where(
            v < 0, (u / width) ** 2 + (v / top) ** 2 < 1, (u / width) ** 4 + below**4 < 1
        )
        wave = 0.05 * np.sin(7 * u + rng.uniform(0, 6))
        hairline = v < -0.45 - rng.uniform(0.0, 0.15) + 0.35 * u**2 + wave
        return hair.astype(np.float32), (hair & hairline).astype(np.float32)

    def shading(self, rng: np.random.Generator) -> np.ndarray:
        """``(H, W)`` brightness factors (about 0.45–1.05) of the face's relief lit from a
        random direction: a dome over the head, brow ridges, nose, cheeks, lips and chin
        raised, eye sockets sunk."""
        lms, at, px = self.lms, self.at, self.px
        height = cv2.GaussianBlur(self.head, (0, 0), 0.35 * self.iod) * 1.2
        ridge = _stroke(self.shape, lms[27:31], 0.09 * self.iod)
        height += cv2.GaussianBlur(ridge, (0, 0), 0.05 * self.iod) * 0.5
        bumps = [
            (at(lms[30], dy=-0.01), px(0.09, 0.08), 0.6),  # nose tip
            (at(lms[57], dy=0.02), px(0.2, 0.07), 0.25),  # lower lip
            (at(lms[51], dy=-0.05), px(0.16, 0.07), 0.2),  # upper lip
            (at(lms[8], dy=-0.12), px(0.22, 0.12), 0.3),  # chin
        ]
        for eye, cheek, brow in ((np.r_[36:42], [1, 41, 31], 19), (np.r_[42:48], [15, 46, 35], 24)):
            bumps += [
                (at(lms[cheek].mean(0), dy=0.05), px(0.22, 0.15), 0.2),
                (lms[eye].mean(0), px(0.2, 0.12), -0.3),
                (at(lms[brow], dy=0.02), px(0.25, 0.06), 0.25),
            ]
        relief = sum(value * _ellipse(self.shape, c, axes) for c, axes, value in bumps)
        height += cv2.GaussianBlur(relief, (0, 0), 0.08 * self.iod)
        gy, gx = np.gradient(height * self.iod * 0.35)
        light = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.6, 0.1), 1.0])
        light /= np.linalg.norm(light)
        lit = (light[2] - gx * light[0] - gy * light[1]) / np.sqrt(1.0 + gx**2 + gy**2)
        return 0.45 + 0.6 * np.clip(lit, 0.0, 1.0)


def procedural_face(rng: np.random.Generator, subject: str = "procedural") -> Identity:
    """A face drawn from scratch at randomly varied canonical landmarks.

    Skin (random tone, shaded by a relief lit from a random direction, fine texture), ears,
    neck, shoulders, hair (random colour and length), eyes (sclera, iris of random colour,
    pupil, lids), brows, nostrils and lips are placed on the landmarks, which are therefore
    exact.

    Returns:
        An :class:`Identity` with ``source="procedural"``.
    """
    lms = _PROCEDURAL_68 + _shape_offsets(_PROCEDURAL_68, rng, spread=1.6)
    lms += rng.normal(0.0, 0.4, (68, 2))  # small irregularity
    plan = _FacePlan(lms, rng)
    shape, ey, iod = plan.shape, plan.ey, plan.iod
    skin_lab = _random_skin_lab(rng)[None, None].astype(np.float32)
    skin = cv2.cvtColor(skin_lab, cv2.COLOR_Lab2RGB)[0, 0] * 255.0
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
    shading = plan.shading(rng)[..., None]

    image = np.empty((*shape, 3), np.float32)
    image[:] = rng.uniform(60, 200, 3)
    clothes = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * 0.3 + rng.uniform(0, 160, 3)
    image = _over(image, plan.shoulders, clothes)
    image = _over(image, plan.hair * (1 - plan.head), hair * 0.8)
    image = _over(image, np.clip(plan.neck + plan.ears, 0, 1), skin * 0.8)
    image = _over(image, plan.head, skin)
    under_jaw = _stroke(shape, lms[2:15] + 0.1 * iod * ey, 0.25 * iod)
    under_jaw = cv2.GaussianBlur(under_jaw, (0, 0), 0.06 * iod) * (1.0 - plan.head) * plan.neck
    image *= 1.0 - 0.5 * under_jaw[..., None]
    image *= shading
    texture = 0.03 * _smooth_noise(rng, shape, 48) + 0.02 * rng.normal(0, 1, shape)
    image *= 1.0 + texture[..., None].astype(np.float32)
    image = _draw_eyes(image, plan, rng)
    # brows: bands thick in the middle, thin at the tail
    for brow in (np.r_[17:22], np.r_[26:21:-1]):
        thick = iod * rng.uniform(0.035, 0.06) * np.array([0.5, 0.9, 1.0, 1.0, 0.9])[:, None]
        outline = np.concatenate([lms[brow] - thick * ey, (lms[brow] + thick * ey)[::-1]])
        band = cv2.GaussianBlur(_fill(shape, outline), (0, 0), 0.012 * iod + 0.5)
        image = _over(image, band * rng.uniform(0.6, 0.9), hair * 0.7)
    # nose: nostrils, the wings' creases, the shadow on the upper lip
    nose = np.zeros(shape, np.float32)
    for a, b, side in ((31, 32, -1), (35, 34, 1)):
        nostril = plan.at((2 * lms[a] + lms[b]) / 3, dy=-0.005)
        nose += 0.8 * _ellipse(shape, nostril, plan.px(0.035, 0.018), plan.angle)
        wing = [
            plan.at(lms[a], side * dx, dy)
            for dx, dy in ((0.01, -0.09), (0.05, -0.04), (0.03, 0.01))
        ]
        nose += 0.35 * _stroke(shape, np.array(wing))
    image = _over(image, np.clip(cv2.GaussianBlur(nose, (0, 0), 0.8), 0, 1), skin * 0.3)
    nose_shadow = _stroke(shape, lms[31:36] + 0.03 * iod * ey, 0.04 * iod)
    image *= 1.0 - 0.3 * cv2.GaussianBlur(nose_shadow, (0, 0), 0.025 * iod)[..., None]
    # lips: upper darker than lower, a dark line between them
    lip_colour = skin * np.array([1.0, 0.7, 0.72]) * rng.uniform(0.75, 0.95) * shading
    upper = _fill(shape, np.concatenate([lms[48:55], lms[[64, 63, 62, 61, 60]]]))
    lower = _fill(shape, np.concatenate([lms[54:60], lms[[48, 60, 67, 66, 65, 64]]]))
    image = _over(image, cv2.GaussianBlur(upper, (0, 0), 0.7) * 0.85, lip_colour * 0.85)
    image = _over(image, cv2.GaussianBlur(lower, (0, 0), 0.7) * 0.85, lip_colour)
    meet = cv2.GaussianBlur(_stroke(shape, lms[[48, 60, 61, 62, 63, 64, 54]]), (0, 0), 0.7)
    image = _over(image, 0.7 * meet, lip_colour * 0.3)
    # hair over the forehead, with strands
    strands = 1.0 + 0.4 * cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (1, 15), 0)
    fringe = cv2.GaussianBlur(plan.fringe, (0, 0), 1.2)
    image = _over(image, fringe, hair * strands[..., None] * shading)
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    mask = np.clip(plan.hair + plan.head + plan.neck + plan.ears, 0, 1)
    return Identity(
        image=np.clip(image + 0.5, 0, 255).astype(np.uint8),
        landmarks=lms,
        subject=subject,
        source="procedural",
        mask=cv2.GaussianBlur(mask, (0, 0), 1.0),
        creases=float(rng.uniform(0.7, 1.3)),
    )


def _draw_eyes(image: np.ndarray, plan: _FacePlan, rng: np.random.Generator) -> np.ndarray:
    """Sclera, iris, pupil, lid lines and lid crease of both eyes, on a float image."""
    shape, lms, ey, iod = plan.shape, plan.lms, plan.ey, plan.iod
    iris_colour = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]
    white = np.array([225, 220, 212], np.float32) * rng.uniform(0.85, 1.0)
    for eye in (np.r_[36:42], np.r_[42:48]):
        sclera = _fill(shape, lms[eye])
        image = _over(image, sclera, white)
        width = float(np.linalg.norm(lms[eye[3]] - lms[eye[0]]))
        centre = lms[eye].mean(0) + rng.normal(0, 0.03 * width, 2)
        image = _over(image, _ellipse(shape, centre, (0.24 * width,) * 2) * sclera, iris_colour)
        image = _over(image, _ellipse(shape, centre, (0.1 * width,) * 2) * sclera, 12.0)
        lines = (
            _stroke(shape, lms[eye[:4]], 0.03 * iod)  # upper lid and lashes
            + 0.25 * _stroke(shape, lms[eye[:4]] - 0.06 * iod * ey)  # lid crease
            + 0.35 * _stroke(shape, lms[eye[[3, 4, 5, 0]]])  # lower lid
        )
        image = _over(
            image, cv2.GaussianBlur(lines, (0, 0), 0.6), np.array([25, 18, 15], np.float32)
        )
    return image


# ---------------------------------------------------------------------------------------
# AU appearance


class _Shading:
    """Dark and light strokes on a face, accumulated, blurred and multiplied into an image.

    Sizes are in IOD along the face's axes (``dx`` across, ``dy`` down); amplitudes are the
    fraction of brightness removed (dark) or of the distance to white added (light), scaled
    by the face's ``strength`` (:attr:`Identity.creases`). ``fine`` layers are blurred little
    (lines, wrinkles), ``broad`` ones much (bulges, shadows).
    """

    LAYERS = ("dark_fine", "dark_broad", "light_fine", "light_broad")

    def __init__(self, landmarks: np.ndarray, shape: tuple[int, int], strength: float) -> None:
        self.lms = landmarks
        self.shape = shape
        self.ex, self.ey, self.iod = _axes(landmarks)
        self.angle = float(np.degrees(np.arctan2(self.ex[1], self.ex[0])))
        self.strength = strength
        self.layers = {key: np.zeros(shape, np.float32) for key in self.LAYERS}

    def at(
        self, base: int | Sequence[int] | np.ndarray, dx: float = 0.0, dy: float = 0.0
    ) -> np.ndarray:
        """A point ``(dx, dy)`` IOD from landmark ``base`` (or the mean of several, or a point)."""
        if isinstance(base, np.ndarray) and base.shape == (2,):
            point = base
        else:
            point = self.lms[np.atleast_1d(base)].mean(axis=0)
        return point + self.iod * (dx * self.ex + dy * self.ey)

    def line(
        self,
        points: Sequence[np.ndarray],
        amp: float,
        width: float = 0.02,
        layer: str = "dark_fine",
    ) -> None:
        """A polyline through ``points`` (``(2,)`` each), ``width`` IOD thick."""
        if amp > 0:
            stroke = _stroke(self.shape, np.array(points), width * self.iod)
            self.layers[layer] += (amp * self.strength) * stroke

    def spot(
        self, centre: np.ndarray, rx: float, ry: float, amp: float, layer: str = "dark_broad"
    ) -> None:
        """An ellipse of half-axes ``rx``, ``ry`` IOD along the face's axes."""
        if amp > 0:
            blob = _ellipse(self.shape, centre, (rx * self.iod, ry * self.iod), self.angle)
            self.layers[layer] += (amp * self.strength) * blob

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` (float32 ``(H, W, 3)``) with the strokes blurred and applied."""
        sigma = {"fine": 0.012 * self.iod + 0.3, "broad": 0.05 * self.iod}
        blurred = {
            key: cv2.GaussianBlur(layer, (0, 0), sigma[key.split("_")[1]])
            for key, layer in self.layers.items()
        }
        dark = np.clip(blurred["dark_fine"] + blurred["dark_broad"], 0.0, 0.9)
        light = np.clip(blurred["light_fine"] + blurred["light_broad"], 0.0, 0.6)
        tint = np.array([0.85, 1.0, 1.05], np.float32)  # creases look reddish-brown
        image = image * (1.0 - dark[..., None] * tint)
        return image + (255.0 - image) * light[..., None]


def _draw_appearance(
    paint: _Shading, levels: Mapping[int, float], rng: np.random.Generator
) -> None:
    """Draw the appearance changes of the AUs at ``levels`` (intensity / 5) onto ``paint``."""
    lv = lambda au: levels.get(au, 0.0)  # noqa: E731
    j = lambda: rng.normal(0.0, 0.006)  # noqa: E731 - small jitter of stroke placement, IOD
    p = paint
    # forehead: horizontal wrinkles, central for AU1, lateral for AU2
    if lv(1) or lv(2):
        mid = p.at([21, 22])
        for dy in (-0.16, -0.27, -0.38):
            xs = np.linspace(-0.55, 0.55, 12)
            pts = [p.at(mid, x, dy + j() - 0.06 + 0.2 * x**2) for x in xs]  # arched
            weight = lv(1) * np.exp(-((xs / 0.22) ** 2)) + lv(2) * np.exp(
                -(((np.abs(xs) - 0.38) / 0.14) ** 2)
            )
            for k in range(len(xs) - 1):
                p.line(pts[k : k + 2], 0.28 * (weight[k] + weight[k + 1]) / 2)
    # glabella: vertical furrows between the lowered brows
    if lv(4):
        for side in (-1, 1):
            p.line(
                [p.at([21, 22], side * 0.05 + j(), 0.02), p.at([21, 22], side * 0.06, -0.14)],
                0.38 * lv(4),
            )
        p.spot(p.at([21, 22, 27], 0, -0.02), 0.12, 0.06, 0.10 * lv(4))
        p.line([p.at(27, -0.06, 0.02), p.at(27, 0.06, 0.02)], 0.15 * lv(4))
    for side, eye, upper, lower, corner, cheek in (
        (-1, np.r_[36:42], (37, 38), (41, 40), 36, (1, 41, 31)),
        (1, np.r_[42:48], (43, 44), (46, 47), 45, (15, 46, 35)),
    ):
        # AU5: sclera shows above the iris
        if lv(5):
            p.spot(p.at(list(upper), 0, 0.025), 0.07, 0.018, 0.30 * lv(5), "light_fine")
        # AU6: crow's feet, infraorbital furrow, cheek bulge
        if lv(6):
            for angle in (-0.45, 0.0, 0.4):
                start = p.at(corner, side * 0.07, 0.0)
                end = p.at(corner, side * (0.07 + 0.13 * np.cos(angle)), 0.13 * np.sin(angle) + j())
                p.line([start, end], 0.32 * lv(6))
            p.line(
                [
                    p.at(lower[0], side * 0.03, 0.09),
                    p.at(list(lower), 0, 0.11 + j()),
                    p.at(lower[1], -side * 0.04, 0.08),
                ],
                0.3 * lv(6),
            )
            p.spot(p.at(list(cheek), 0, -0.02), 0.16, 0.10, 0.18 * lv(6), "light_broad")
            p.spot(p.at(list(cheek), 0, 0.14), 0.14, 0.05, 0.12 * lv(6))
        # AU7 (and AU6): the tense lower lid bulges
        tense = max(lv(7), 0.5 * lv(6))
        if tense:
            p.line([p.at(lower[0], 0, 0.035), p.at(lower[1], 0, 0.035)], 0.28 * tense)
            p.line(
                [p.at(lower[0], 0, 0.015), p.at(lower[1], 0, 0.015)],
                0.15 * tense,
                layer="light_fine",
            )
        # AU9: wrinkles on the side of the nose
        if lv(9):
            for dy in (-0.02, 0.03):
                p.line(
                    [p.at(29, side * 0.03, dy + j()), p.at(29, side * 0.11, dy - 0.05)], 0.3 * lv(9)
                )
        # nasolabial furrow: AU9 and AU10 deepen its upper part, AU12 all of it
        upper_part, whole = max(lv(10), 0.6 * lv(9)), lv(12)
        lip_corner, nose_wing = (48, 31) if side < 0 else (54, 35)
        wing = p.at(nose_wing, side * 0.05, -0.02)
        mid = p.at(lip_corner, side * (0.12 + 0.04 * whole), -0.12 + j())
        end = p.at(lip_corner, side * (0.09 + 0.03 * whole), 0.08)
        if upper_part:
            p.line([wing, (wing + mid) / 2, mid], 0.38 * upper_part, width=0.025)
        if whole:
            p.line([wing, mid, end], 0.34 * whole, width=0.025)
            p.spot(p.at(lip_corner, side * 0.2, -0.14), 0.11, 0.08, 0.16 * whole, "light_broad")
            p.line(
                [p.at(lip_corner, side * 0.015), p.at(lip_corner, side * 0.05, -0.035)],
                0.25 * whole,
            )
        # AU14: dimple beside the corner, a short vertical fold at the corner
        if lv(14):
            p.spot(
                p.at(lip_corner, side * 0.07, -0.01 + j()), 0.022, 0.04, 0.55 * lv(14), "dark_fine"
            )
            p.line(
                [p.at(lip_corner, side * 0.025, -0.04), p.at(lip_corner, side * 0.03, 0.035)],
                0.35 * lv(14),
            )
            p.spot(p.at(lip_corner, -side * 0.01, -0.03), 0.03, 0.02, 0.15 * lv(14), "light_fine")
        # AU15: a fold from the corner down
        if lv(15):
            p.line(
                [
                    p.at(lip_corner, side * 0.02, 0.01),
                    p.at(lip_corner, side * 0.06, 0.09),
                    p.at(lip_corner, side * 0.07, 0.16),
                ],
                0.3 * lv(15),
            )
        # AU20: stretch folds sideways from the corner
        if lv(20):
            p.line(
                [p.at(lip_corner, side * 0.04, 0.02), p.at(lip_corner, side * 0.15, 0.07 + j())],
                0.25 * lv(20),
            )
    # AU9: across the nose bridge
    if lv(9):
        for dy in (-0.04, 0.0, 0.04):
            p.line(
                [p.at(28, -0.07, dy + j()), p.at(28, 0.0, dy - 0.01), p.at(28, 0.07, dy + j())],
                0.3 * lv(9),
            )
    # AU17: chin boss wrinkling (dimpled texture) and the furrow under the lower lip
    if lv(17):
        chin = p.at([57, 8], 0, 0.03)
        for _ in range(22):
            offset = rng.uniform(-1, 1, 2) * (0.15, 0.07)
            p.spot(p.at(chin, *offset), 0.012, 0.012, 0.35 * lv(17), "dark_fine")
        p.spot(chin, 0.14, 0.06, 0.12 * lv(17), "light_broad")
        p.line(
            [p.at(57, -0.13, 0.07), p.at(57, 0, 0.1 + j()), p.at(57, 0.13, 0.07)],
            0.35 * lv(17),
            width=0.025,
        )
    # AU23: vertical lines above the narrowed upper lip; AU24: bulges above and below
    if lv(23):
        for x in (-0.07, -0.03, 0.03, 0.07):
            p.line([p.at(51, x, -0.05), p.at(51, x + j(), -0.005)], 0.25 * lv(23))
    if lv(24):
        p.spot(p.at(51, 0, -0.07), 0.14, 0.04, 0.18 * lv(24), "light_broad")
        p.spot(p.at(57, 0, 0.06), 0.12, 0.03, 0.15 * lv(24), "light_broad")
        p.line([p.at(i) for i in (60, 61, 62, 63, 64)], 0.35 * lv(24))


def _lip_gap(landmarks: np.ndarray, down: np.ndarray) -> float:
    """Mean distance between the inner lips (61–63 to 67–65) along the unit vector ``down``."""
    return float(np.mean((landmarks[[67, 66, 65]] - landmarks[[61, 62, 63]]) @ down))


def _mouth_interior(
    image: np.ndarray, neutral: np.ndarray, lms: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Paint the mouth's dark interior and the upper teeth where the inner lips have parted.

    Args:
        image: ``(H, W, 3)`` float32 image, warped.
        neutral: ``(68, 2)`` neutral landmarks; lms: ``(68, 2)`` deformed ones.

    Returns:
        The image with the interior painted, in proportion to how far the lips parted.
    """
    _, ey, iod = _axes(lms)
    gap = _lip_gap(lms, ey)
    opened = (gap - max(_lip_gap(neutral, ey), 0.0)) / iod
    alpha = float(np.clip(opened / 0.04, 0.0, 1.0))
    if alpha <= 0:
        return image
    shape = image.shape[:2]
    inner = lms[60:68]
    cavity = cv2.GaussianBlur(_fill(shape, inner), (0, 0), 0.6)
    image = _over(image, cavity * alpha, np.array([70, 22, 28], np.float32) * rng.uniform(0.6, 1.2))
    tooth_depth = min(0.05 * iod, 0.5 * max(gap, 0.0))
    teeth = _fill(
        shape,
        np.concatenate([lms[[60, 61, 62, 63, 64]], (lms[[64, 63, 62, 61, 60]] + tooth_depth * ey)]),
    )
    teeth = cv2.GaussianBlur(teeth * cavity, (0, 0), 0.6)
    return _over(
        image, teeth * alpha * 0.9, np.array([228, 220, 200], np.float32) * rng.uniform(0.8, 1.0)
    )


# ---------------------------------------------------------------------------------------
# Nuisances


@dataclass(frozen=True, eq=False)
class Nuisance:
    """What a camera and a scene change in an image, on top of the face.

    Photometric values act in the canvas before the pose; ``blur``, ``noise``, ``jpeg`` and
    ``downscale`` act on the final image.

    Attributes:
        background: ``(CANVAS, CANVAS, 3)`` uint8 image put behind the head, or None to keep
            the identity's own.
        light: ``(gain, angle)``: brightness changes linearly by ``gain`` across the image
            along direction ``angle`` (radians).
        cast: ``(3,)`` per-channel gains.
        contrast, brightness, gamma: ``out = 255·((c·(x − m) + m + b)/255)^γ`` with m the mean.
        roll, yaw, pitch: head rotation in degrees (yaw and pitch rotate the face plane).
        scale: Face size factor.
        shift: ``(2,)`` translation as a fraction of the image size.
        blur: Gaussian σ in output pixels (0 = none).
        noise: Gaussian noise σ in grey levels.
        jpeg: JPEG quality, 0 = no compression.
        downscale: Resolution lost and restored (1 = none).
    """

    background: np.ndarray | None = None
    light: tuple[float, float] = (0.0, 0.0)
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    contrast: float = 1.0
    brightness: float = 0.0
    gamma: float = 1.0
    roll: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int = 0
    downscale: float = 1.0


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    """Face-free photos and textures of scikit-image's bundled data, for backgrounds."""
    try:
        from skimage import data
    except ImportError:
        return ()
    names = (
        "brick", "grass", "gravel", "coffee", "chelsea", "rocket", "colorwheel", "moon",
        "hubble_deep_field", "immunohistochemistry", "coins", "clock", "page", "text", "cell",
    )  # fmt: skip
    photos = []
    for name in names:
        try:
            image = getattr(data, name)()
        except Exception:  # noqa: BLE001 - an image that needs an optional download
            continue
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        photos.append(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
    return tuple(photos)


def _background(rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """A random ``(size, size, 3)`` uint8 background: flat, gradient, smooth colour noise,
    stripes, or a random crop of a bundled photo."""
    shape = (size, size)
    kind = rng.choice(
        ["flat", "gradient", "noise", "stripes", "photo"], p=[0.15, 0.2, 0.2, 0.1, 0.35]
    )
    photos = _photos()
    if kind == "photo" and photos:
        photo = photos[rng.integers(len(photos))]
        side = int(rng.uniform(0.3, 1.0) * min(photo.shape[:2]))
        y0 = rng.integers(0, photo.shape[0] - side + 1)
        x0 = rng.integers(0, photo.shape[1] - side + 1)
        crop = photo[y0 : y0 + side, x0 : x0 + side]
        crop = cv2.resize(crop, shape, interpolation=cv2.INTER_AREA)
        tint = rng.uniform(0.7, 1.3, 3)
        return np.clip(crop * tint, 0, 255).astype(np.uint8)
    base = rng.uniform(20, 235, 3).astype(np.float32)
    if kind == "gradient":
        other = rng.uniform(20, 235, 3).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / size
        t = np.clip((xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle) + 0.5, 0, 1)[..., None]
        out = base * (1 - t) + other * t
    elif kind == "noise":
        out = base + 60.0 * _smooth_noise(rng, shape, int(rng.integers(3, 10)), 3)
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(8, 60)
        yy, xx = np.mgrid[0:size, 0:size]
        wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)[..., None]
        out = base + rng.uniform(15, 60) * wave * rng.uniform(0.5, 1.0, 3)
    else:
        out = np.broadcast_to(base, (*shape, 3))
    out = out + rng.normal(0, 3, (*shape, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def sample_nuisance(rng: np.random.Generator, strength: float = 1.0) -> Nuisance:
    """Random nuisances; ``strength`` (0–1) scales the size of every one.

    Ranges at ``strength=1``: background replaced 85% of the time; light gain ±0.5; colour
    cast ±12%; contrast 0.75–1.2; brightness ±20; gamma 0.75–1.35; roll N(0, 8°) clipped to
    ±20°; yaw N(0, 6°) within ±15°; pitch within ±8°; scale 0.9–1.1; shift ±5%; blur σ up to
    1.2 (half the time); noise σ up to 6; JPEG quality 30–95 (half the time); resolution
    lost down to 0.45 (a fifth of the time).
    """
    s = float(strength)
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    return Nuisance(
        background=_background(rng) if rng.random() < 0.85 * min(1.0, 2 * s) else None,
        light=(u(-0.5, 0.5) * s, u(0, 2 * np.pi)),
        cast=tuple(1.0 + rng.uniform(-0.12, 0.12, 3) * s),
        contrast=1.0 + u(-0.25, 0.2) * s,
        brightness=u(-20, 20) * s,
        gamma=float(np.exp(u(np.log(0.75), np.log(1.35)) * s)),
        roll=float(np.clip(rng.normal(0, 8), -20, 20)) * s,
        yaw=float(np.clip(rng.normal(0, 6), -15, 15)) * s,
        pitch=u(-8, 8) * s,
        scale=1.0 + u(-0.1, 0.1) * s,
        shift=tuple(rng.uniform(-0.05, 0.05, 2) * s),
        blur=u(0.0, 1.2) * s if rng.random() < 0.5 else 0.0,
        noise=u(0.0, 6.0) * s,
        jpeg=int(rng.integers(30, 96)) if rng.random() < 0.5 * s else 0,
        downscale=1.0 - u(0.0, 0.55) * s if rng.random() < 0.2 else 1.0,
    )


def _photometric(image: np.ndarray, nz: Nuisance) -> np.ndarray:
    """Lighting gradient, colour cast, contrast, brightness and gamma on a float image."""
    h, w = image.shape[:2]
    gain, angle = nz.light
    if gain:
        x = np.linspace(-0.5, 0.5, w, dtype=np.float32) * np.float32(np.cos(angle) * gain)
        y = np.linspace(-0.5, 0.5, h, dtype=np.float32) * np.float32(np.sin(angle) * gain)
        image = image * (1.0 + x[None, :] + y[:, None])[..., None]
    image = image * np.asarray(nz.cast, np.float32)
    mean = float(image.mean())
    image = nz.contrast * (image - mean) + mean + nz.brightness
    if nz.gamma != 1.0:
        image = 255.0 * np.power(np.clip(image, 0, 255) / 255.0, nz.gamma)
    return image


def _pose_matrix(nz: Nuisance, centre: np.ndarray, size: int) -> np.ndarray:
    """``(3, 3)`` homography from the canvas to a ``size`` image: the face plane rotated by
    yaw and pitch about ``centre`` (seen from 2.5 canvas widths), rolled, scaled, shifted."""
    yaw, pitch, roll = np.radians([nz.yaw, nz.pitch, nz.roll])
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array(
        [[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
    )
    rot = ry @ rx
    depth = 2.5 * CANVAS
    # plane point (x', y', 0) at distance `depth`, projected with focal length `depth`
    plane = np.array(
        [
            [rot[0, 0], rot[0, 1], 0.0],
            [rot[1, 0], rot[1, 1], 0.0],
            [rot[2, 0] / depth, rot[2, 1] / depth, 1.0],
        ]
    )
    c, s = np.cos(roll) * nz.scale, np.sin(roll) * nz.scale
    similarity = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    to_centre = np.array([[1.0, 0, -centre[0]], [0, 1.0, -centre[1]], [0, 0, 1.0]])
    back = np.array(
        [
            [1.0, 0, centre[0] + nz.shift[0] * CANVAS],
            [0, 1.0, centre[1] + nz.shift[1] * CANVAS],
            [0, 0, 1.0],
        ]
    )
    out_scale = np.diag([size / CANVAS, size / CANVAS, 1.0])
    return out_scale @ back @ similarity @ plane @ to_centre


def _project(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(K, 2)`` points through a ``(3, 3)`` homography."""
    h = points @ matrix[:, :2].T + matrix[:, 2]
    return h[:, :2] / h[:, 2:]


def _degrade(image: np.ndarray, nz: Nuisance, rng: np.random.Generator) -> np.ndarray:
    """Resolution loss, blur, noise and JPEG compression of a uint8 image."""
    h, w = image.shape[:2]
    if nz.downscale < 1.0:
        small = cv2.resize(
            image,
            (max(int(w * nz.downscale), 8), max(int(h * nz.downscale), 8)),
            interpolation=cv2.INTER_AREA,
        )
        image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if nz.blur > 0.05:
        image = cv2.GaussianBlur(image, (0, 0), nz.blur)
    if nz.noise > 0:
        image = np.clip(image + rng.normal(0.0, nz.noise, image.shape), 0, 255).astype(np.uint8)
    if nz.jpeg:
        _, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(nz.jpeg)])
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # channel order is kept as given
    return image


# ---------------------------------------------------------------------------------------
# Rendering


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


def _eased(keys: np.ndarray, n: int, every: int, hold: float = 0.0) -> np.ndarray:
    """``(n, D)`` values going through the ``(K, D)`` ``keys`` placed every ``every`` steps:
    each key is held for the first ``hold`` of its interval, then eases (smoothstep) into the
    next. Needs ``K > (n - 1) / every + 1``."""
    t = np.arange(n) / every
    i = np.floor(t).astype(int)
    f = np.clip((t - i - hold) / (1.0 - hold), 0.0, 1.0)
    f = (f * f * (3 - 2 * f))[:, None]
    return keys[i] * (1 - f) + keys[i + 1] * f


# ---------------------------------------------------------------------------------------
# Intensities

#: Expression prototypes: ``name → (core, optional, probability)``. ``core`` maps AUs to
#: their weight (their intensity is the expression's strength times the weight, jittered),
#: ``optional`` maps AUs to the chance that they join (at a random fraction of the strength);
#: ``probability`` is how often the prototype is drawn. ``random`` has no AUs: only the
#: independent activations that every prototype receives, at a higher rate.
PROTOTYPES: dict[str, tuple[dict[int, float], dict[int, float], float]] = {
    "neutral": ({}, {}, 0.08),
    "happiness": ({6: 0.8, 12: 1.0}, {25: 0.5, 26: 0.15, 14: 0.25, 10: 0.2, 7: 0.2}, 0.14),
    "smile": ({12: 1.0}, {25: 0.3, 6: 0.25}, 0.07),
    "sadness": ({1: 0.9, 4: 0.8, 15: 1.0}, {17: 0.5, 6: 0.1}, 0.07),
    "surprise": ({1: 1.0, 2: 1.0, 5: 0.8, 26: 0.9}, {25: 0.8}, 0.06),
    "disgust": ({9: 1.0, 10: 1.0}, {17: 0.5, 4: 0.4, 25: 0.3, 15: 0.2, 7: 0.3}, 0.07),
    "anger": ({4: 1.0, 5: 0.6, 7: 0.8, 23: 0.7}, {24: 0.5, 17: 0.4, 10: 0.2}, 0.06),
    "contempt": ({14: 1.0}, {12: 0.3, 17: 0.25}, 0.08),
    "fear": ({1: 0.9, 2: 0.8, 4: 0.7, 5: 1.0, 20: 0.9, 25: 0.8}, {26: 0.3}, 0.05),
    "pain": ({4: 0.8, 6: 1.0, 7: 0.8, 10: 0.8}, {9: 0.5, 25: 0.4, 17: 0.3}, 0.05),
    "doubt": ({17: 1.0}, {14: 0.4, 24: 0.4, 15: 0.3}, 0.07),
    "random": ({}, {}, 0.18),
}


def sample_intensities(
    rng: np.random.Generator,
    aus: str | Iterable[int] = "all",
    independent: float = 0.12,
) -> dict[int, float]:
    """Draw one set of AU intensities with realistic co-occurrence.

    A prototype of :data:`PROTOTYPES` is drawn and its strength (uniform on 0.3–5) is shared
    out over its AUs; then every AU is also switched on by itself with probability
    ``independent`` (three times that for the ``random`` prototype) at a uniform 0–5, keeping
    the larger value. A jaw drop brings lips apart with it. Values are rounded to 3 decimals
    so that what is written is what was rendered.

    Args:
        rng: Randomness.
        aus: AUs that may be active (a set name or numbers); the others are 0.
        independent: Probability of an independent activation per AU.

    Returns:
        AU number → intensity in [0, 5], for every AU of the catalogue.
    """
    allowed = set(resolve_aus(aus))
    names = list(PROTOTYPES)
    probs = np.array([PROTOTYPES[n][2] for n in names])
    name = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    core, optional, _ = PROTOTYPES[name]
    strength = rng.uniform(0.3, 5.0)
    out = dict.fromkeys(_AU_ORDER, 0.0)
    for au, weight in core.items():
        out[au] = strength * weight * rng.uniform(0.75, 1.25) + rng.normal(0.0, 0.3)
    for au, chance in optional.items():
        if rng.random() < chance:
            out[au] = strength * rng.uniform(0.2, 1.0)
    rate = independent * (3.0 if name == "random" else 1.0)
    for au in _AU_ORDER:
        if rng.random() < rate:
            out[au] = max(out[au], rng.uniform(0.0, 5.0))
    if out[26] > 0.5:
        out[25] = max(out[25], out[26] * rng.uniform(0.6, 1.0))
    return {
        au: round(float(np.clip(v, 0.0, 5.0)), 3) if au in allowed else 0.0 for au, v in out.items()
    }


def intensity_curves(
    rng: np.random.Generator,
    n_frames: int,
    aus: str | Iterable[int] = "all",
    keyframe_every: int = 4,
    hold: float = 0.5,
) -> dict[int, np.ndarray]:
    """Smooth AU intensity curves over ``n_frames`` frames.

    Key frames every ``keyframe_every`` frames get intensities from
    :func:`sample_intensities`; each key is held for the first ``hold`` of its interval,
    then eases into the next (smoothstep). So the curves stay in [0, 5], are exactly 0 where
    two zeros meet, and their values are spread about as the keys' are.

    Returns:
        AU number → ``(n_frames,)`` float64 intensities (3 decimals), every catalogue AU.
    """
    n_keys = (n_frames - 1) // keyframe_every + 2
    samples = [sample_intensities(rng, aus) for _ in range(n_keys)]
    keys = np.array([[sample[au] for au in _AU_ORDER] for sample in samples])
    values = np.round(_eased(keys, n_frames, keyframe_every, hold), 3)
    return {au: values[:, a] for a, au in enumerate(_AU_ORDER)}


# ---------------------------------------------------------------------------------------
# Data set writer


@dataclass(frozen=True)
class _SubjectJob:
    index: int
    seed: int
    frames: int
    sequence_length: int
    aus: tuple[int, ...]
    size: int
    procedural: float
    out_dir: str


def _render_subject(job: _SubjectJob) -> list[dict[str, object]]:
    """Render and write every frame of one subject; its manifest rows (without split)."""
    identity = make_identity(job.index, job.seed, job.procedural)
    folder = Path(job.out_dir, "images", identity.subject)
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    starts = range(0, job.frames, job.sequence_length)
    for q, start in enumerate(starts):
        length = min(job.sequence_length, job.frames - start)
        rng = np.random.default_rng(np.random.SeedSequence([job.seed, job.index, q, 0x5E]))
        curves = intensity_curves(rng, length, job.aus)
        sequence = f"q{q:02d}"
        frames = render_sequence(identity, curves, rng, True, job.size)
        for frame, (image, lms) in enumerate(frames):
            name = f"{sequence}_{frame:05d}.png"
            _, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            (folder / name).write_bytes(data.tobytes())
            row: dict[str, object] = {
                "image": f"images/{identity.subject}/{name}",
                "subject": identity.subject,
                "sequence": sequence,
                "frame": frame,
            }
            row.update({column_name(au): curves[au][frame] for au in _AU_ORDER})
            lms = np.round(lms, 3)
            row.update({f"x_{i}": lms[i, 0] for i in range(68)})
            row.update({f"y_{i}": lms[i, 1] for i in range(68)})
            row["source"] = identity.source
            rows.append(row)
    return rows


def _run(jobs: list[_SubjectJob], workers: int) -> Iterator[list[dict[str, object]]]:
    """The rows of each job, in order, rendered here or by ``workers`` processes."""
    if workers <= 1:
        yield from map(_render_subject, jobs)
        return
    # "spawn", not fork: forking a process that already runs PyTorch/OpenMP threads can
    # deadlock the children; each worker renders with one OpenCV thread
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=cv2.setNumThreads,
                             initargs=(1,)) as pool:
        yield from pool.map(_render_subject, jobs)


def make_dataset(
    out_dir: str | os.PathLike[str],
    n_subjects: int = 60,
    frames_per_subject: int = 50,
    aus: str | Iterable[int] = "all",
    seed: int = 0,
    size: int = CANVAS,
    splits: Sequence[float] = (0.7, 0.15, 0.15),
    workers: int = 1,
    progress: bool = True,
    sequence_length: int = 10,
    procedural: float = 0.5,
    first_subject: int = 0,
) -> Path:
    """Write a synthetic AU data set: PNG images and a manifest (``docs/data-format.md``).

    Subject ``i`` is :func:`make_identity` ``(i, seed, procedural)``; its frames form
    sequences of ``sequence_length`` frames whose intensities follow smooth curves
    (:func:`intensity_curves`) under one scene with a drifting head
    (:func:`render_sequence`). Every random choice derives from ``(seed, subject,
    sequence)``, so the same arguments give byte-identical files whatever ``workers``.

    Args:
        out_dir: Folder to write into (created); images go to
            ``images/<subject>/<sequence>_<frame:05d>.png``.
        n_subjects: Number of identities (at least 3 for three non-empty splits).
        frames_per_subject: Frames per subject.
        aus: AUs that may be active; the manifest has a column for every catalogue AU
            (inactive ones are 0), so one data set serves any AU set.
        seed: Seed of everything.
        size: Side of the square images.
        splits: Shares of subjects in train, val and test (subject-disjoint, by
            :func:`aumaps.data.manifest.assign_splits` with ``seed``).
        workers: Processes rendering subjects in parallel.
        progress: Show a progress bar.
        sequence_length: Frames per sequence.
        procedural: Share of drawn identities (the rest vary the real photos).
        first_subject: Index of the first identity: subjects ``first_subject ..
            first_subject + n_subjects - 1``. A set made with the same ``seed`` and
            ``first_subject`` past another set's last subject holds new identities with new
            names, so the two can be trained on together (``aumaps prepare manifest A B``).

    Returns:
        Path of ``manifest.csv``: ``image, subject, sequence, frame, split``, ``AUxx_r`` for
        every catalogue AU, ``x_0..x_67, y_0..y_67`` (exact landmarks in image pixels) and
        ``source`` (what the identity was made from).
    """
    if n_subjects < 1 or frames_per_subject < 1 or sequence_length < 1:
        raise ValueError("n_subjects, frames_per_subject and sequence_length must be at least 1")
    if first_subject < 0:
        raise ValueError(f"first_subject must be at least 0, got {first_subject}")
    if n_subjects < np.count_nonzero(splits):
        raise ValueError(f"{n_subjects} subject(s) cannot fill the splits {tuple(splits)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    allowed = resolve_aus(aus)
    jobs = [
        _SubjectJob(
            i, seed, frames_per_subject, sequence_length, allowed, size, procedural, str(out)
        )
        for i in range(first_subject, first_subject + n_subjects)
    ]
    rows: list[dict[str, object]] = []
    total = n_subjects * frames_per_subject
    with tqdm(total=total, unit="img", disable=not progress, desc="synth") as bar:
        for subject_rows in _run(jobs, workers):
            rows.extend(subject_rows)
            bar.update(len(subject_rows))
    table = assign_splits(pd.DataFrame(rows), splits, seed)
    columns = [
        "image",
        "subject",
        "sequence",
        "frame",
        "split",
        *(column_name(a) for a in _AU_ORDER),
        *LANDMARK_COLUMNS,
        "source",
    ]
    path = out / "manifest.csv"
    table[columns].to_csv(path, index=False, float_format="%.3f", lineterminator="\n")
    return path
