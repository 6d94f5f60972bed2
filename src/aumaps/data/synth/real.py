"""Identities from real photos: the face photos that ship with aumaps' dependencies
(:data:`REAL_FACES`, :func:`real_faces`: found once by dlib, brought to the canvas, made
nearer to neutral) and new identities varied from them (:func:`vary_identity`: face shape
warped, skin tone changed, maybe mirrored).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np

from ...aus import MIRROR_68
from .canvas import _CANONICAL_68, CANVAS, _fill, _over, _stroke
from .geometry import _axes, displace_landmarks
from .identity import Identity, _head_polygon, _random_skin_lab, _shape_offsets
from .looks import _HAIR_COLOURS, _age, _facial_hair, sample_look
from .warp import _warp_image


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

    from ...images import read_image

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
    warped = cv2.warpAffine(image, matrix, (CANVAS, CANVAS), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
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
    from ...landmarks import FaceLandmarker

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


def _neutralise(image: np.ndarray, landmarks: np.ndarray, undo: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
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


def _skin_tone(image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray, target_lab: np.ndarray) -> np.ndarray:
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


def _mirror(image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    """A new identity made from ``base``: face shape warped, skin tone changed, maybe aged,
    given stubble or a beard, glasses or a fringe, maybe mirrored.

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
    canvas = image.astype(np.float32)
    if rng.random() < 0.3:
        canvas = _age(canvas, lms, float(rng.uniform(0.2, 0.8)), rng)
    facial_hair = rng.choice(["none", "stubble", "beard"], p=[0.7, 0.2, 0.1])
    if facial_hair != "none":
        hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.5, 0.9)
        canvas = _facial_hair(canvas, lms, mask, rng, str(facial_hair), hair)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return Identity(
        image,
        lms,
        subject,
        base.source,
        mask,
        creases=float(rng.uniform(0.7, 1.3)),
        look=sample_look(rng, glasses=0.2 if base.source != "grace_hopper" else 0.0),
    )


#: Parts of a face that :func:`_transplant` can take from a real photo: landmarks that outline
#: them (one hull per group) and the photos they may come from (Grace Hopper's eyes sit behind
#: her glasses, so only the astronaut's are taken).
_PARTS = {
    "eyes": (
        ((17, 18, 19, 20, 21, 36, 37, 38, 39, 40, 41), (22, 23, 24, 25, 26, 42, 43, 44, 45, 46, 47)),
        ("astronaut",),
    ),
    "nose": (((27, 31, 32, 33, 34, 35, 39, 42),), ("astronaut", "grace_hopper")),
    "mouth": (((48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59),), ("astronaut", "grace_hopper")),
}


def _transplant(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, chance: float = 0.5) -> np.ndarray:
    """Give a drawn face photographic parts: each of the eyes (with the brows), the nose and
    the mouth is, with probability ``chance``, taken from a real photo moved onto this face's
    landmarks (thin-plate spline) and blended in by Poisson image editing (OpenCV's
    ``seamlessClone``), which keeps the photo's detail and takes this face's colours.

    Args:
        image: ``(H, W, 3)`` uint8 drawn face; landmarks: its ``(68, 2)`` landmarks.

    Returns:
        The ``(H, W, 3)`` uint8 face.
    """
    bases = {face.source: face for face in real_faces()}
    if not bases:
        return image
    _, _, iod = _axes(landmarks)
    margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(0.14 * iod) | 1,) * 2)
    warped: dict[str, np.ndarray] = {}
    for hulls, sources in _PARTS.values():
        if rng.random() >= chance:
            continue
        sources = [name for name in sources if name in bases]
        if not sources:
            continue
        name = sources[int(rng.integers(len(sources)))]
        if name not in warped:
            base = bases[name]
            warped[name] = _warp_image(base.image, base.landmarks, landmarks)
        mask = np.zeros(image.shape[:2], np.uint8)
        for hull in hulls:
            cv2.fillConvexPoly(mask, cv2.convexHull(landmarks[list(hull)].astype(np.float32)).astype(np.int32), 255)
        mask = cv2.dilate(mask, margin)
        mask[:2] = mask[-2:] = 0
        mask[:, :2] = mask[:, -2:] = 0
        x, y, w, h = cv2.boundingRect(mask)
        if w == 0:
            continue
        image = cv2.seamlessClone(warped[name], image, mask, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    return image
