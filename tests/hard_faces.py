"""Hard faces for face detectors, made from public-domain photos and known landmarks.

Shared by the detector tests (``tests/test_landmarks.py``) and the detector benchmark
(``benchmarks/bench_detectors.py``). Every function takes an RGB image and the ``(68, 2)``
landmarks of one face in it (found by dlib on the unoccluded photo, or known for a synthetic
face) and returns a new image, plus the landmarks where the transform moves them:

* occlusions drawn over the face: :func:`sunglasses`, :func:`mask`, :func:`hand_over_mouth`;
* the scene: :func:`darken` (a dark room: little light, sensor noise), :func:`rotate` (roll);
* layout: :func:`tile` (a square cut around a face, the face a given width),
  :func:`group` (several tiles side by side: a group photo).

The real photos are NASA's portrait of Eileen Collins (``skimage.data.astronaut()``) and
the U.S. Navy's of Grace Hopper (matplotlib's ``grace_hopper.jpg``), both public domain.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np

GRACE_HOPPER = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


def face_box(landmarks: np.ndarray) -> np.ndarray:
    """``(4,)`` x0, y0, x1, y1 of the face: the landmarks' extent, brows to chin."""
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])


def _eye(landmarks: np.ndarray, first: int) -> tuple[np.ndarray, float]:
    points = landmarks[first : first + 6]
    return points.mean(axis=0), float(np.linalg.norm(points[3] - points[0]))


def _angle(landmarks: np.ndarray) -> float:
    left, right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    return float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))


def sunglasses(image: np.ndarray, landmarks: np.ndarray, shade: int = 18, size: float = 1.0) -> np.ndarray:
    """Large dark lenses (``size`` 1: nearly touching over the nose, from the brows to the
    cheek bones), a bridge over the nose and the arms to the temples, with a faint
    reflection on each lens."""
    out = image.copy()
    angle = _angle(landmarks)
    iod = float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))
    axes = (int(round(0.47 * size * iod)), int(round(0.36 * size * iod)))
    for first in (36, 42):
        centre, _ = _eye(landmarks, first)
        middle = (int(centre[0]), int(centre[1] - 0.02 * iod))
        cv2.ellipse(out, middle, axes, angle, 0, 360, (shade, shade, shade + 6), -1, cv2.LINE_AA)
        cv2.ellipse(out, middle, axes, angle, 0, 360, (5, 5, 5), max(1, int(iod * 0.04)), cv2.LINE_AA)
        glint = (int(centre[0] - axes[0] * 0.35), int(centre[1] - axes[1] * 0.35))
        cv2.ellipse(
            out, glint, (max(1, axes[0] // 5), max(1, axes[1] // 7)), angle - 30, 0, 360, (70, 70, 80), -1, cv2.LINE_AA
        )
    thick = max(1, int(iod * 0.05))
    inner_left, inner_right = landmarks[39], landmarks[42]
    bridge = landmarks[27] + (landmarks[27] - landmarks[28]) * 0.3
    pts = np.array([inner_left, bridge, inner_right]).astype(np.int32)
    cv2.polylines(out, [pts], False, (10, 10, 10), thick, cv2.LINE_AA)
    for eye_corner, temple in ((landmarks[36], landmarks[0]), (landmarks[45], landmarks[16])):
        cv2.line(
            out, tuple(int(v) for v in eye_corner), tuple(int(v) for v in temple), (10, 10, 10), thick, cv2.LINE_AA
        )
    return out


def mask(image: np.ndarray, landmarks: np.ndarray, colour: tuple[int, int, int] = (170, 200, 225)) -> np.ndarray:
    """A surgical mask from the nose's bridge to under the chin, cheek to cheek, with pleats
    and ear loops."""
    out = image.copy()
    jaw = landmarks[1:16]
    top = landmarks[28] + (landmarks[29] - landmarks[28]) * 0.2
    chin_down = landmarks[8] + (landmarks[8] - landmarks[33]) * 0.12
    outline = np.vstack([jaw[:7], chin_down[None], jaw[8:], top[None]])
    outline = np.vstack([outline[:-1], (landmarks[15] + top) / 2, top, (landmarks[1] + top) / 2])
    cv2.fillPoly(out, [outline.astype(np.int32)], colour, cv2.LINE_AA)
    iod = float(np.linalg.norm(landmarks[36] - landmarks[45]))
    darker = tuple(int(c * 0.8) for c in colour)
    for k in (0.35, 0.55, 0.75):  # pleats
        y = top[1] + (chin_down[1] - top[1]) * k
        cv2.line(
            out,
            (int(landmarks[2][0] + 0.05 * iod), int(y)),
            (int(landmarks[14][0] - 0.05 * iod), int(y)),
            darker,
            max(1, int(iod * 0.025)),
            cv2.LINE_AA,
        )
    for side, ear in ((landmarks[2], landmarks[0]), (landmarks[14], landmarks[16])):
        cv2.line(
            out,
            tuple(int(v) for v in side),
            tuple(int(v) for v in ear),
            (235, 235, 235),
            max(1, int(iod * 0.03)),
            cv2.LINE_AA,
        )
    return out


def hand_over_mouth(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A hand laid over the mouth and chin: a palm and four fingers across the lower face in
    the face's own skin tone, slightly darker, with the gaps between the fingers drawn."""
    out = image.copy()
    h, w = image.shape[:2]
    cheeks = (landmarks[[2, 3, 13, 14]] * 2 + landmarks[[31, 31, 35, 35]]) / 3  # between jaw and nose
    xs, ys = np.clip(cheeks[:, 0].astype(int), 0, w - 1), np.clip(cheeks[:, 1].astype(int), 0, h - 1)
    skin = tuple(int(c) for c in np.clip(np.median(image[ys, xs], axis=0) * 0.9, 0, 255))
    iod = float(np.linalg.norm(landmarks[36] - landmarks[45]))
    mouth = landmarks[48:60].mean(axis=0)
    angle = _angle(landmarks)
    palm_centre = mouth + np.array([0.55 * iod, 0.35 * iod])
    cv2.ellipse(
        out,
        tuple(int(v) for v in palm_centre),
        (int(0.55 * iod), int(0.5 * iod)),
        angle + 20,
        0,
        360,
        skin,
        -1,
        cv2.LINE_AA,
    )
    gap = tuple(int(c * 0.65) for c in skin)
    for k in range(4):  # fingers, from the palm across the mouth towards the far cheek
        y = mouth[1] - 0.28 * iod + k * 0.2 * iod
        start = np.array([palm_centre[0], y + 0.1 * iod])
        end = np.array([mouth[0] - (0.75 - 0.08 * abs(k - 1.5)) * iod, y])
        cv2.line(out, tuple(int(v) for v in start), tuple(int(v) for v in end), skin, int(0.19 * iod), cv2.LINE_AA)
        if k:
            cv2.line(
                out,
                tuple(int(v) for v in start - [0, 0.1 * iod]),
                tuple(int(v) for v in end - [0, 0.1 * iod]),
                gap,
                max(1, int(0.02 * iod)),
                cv2.LINE_AA,
            )
    return out


def darken(image: np.ndarray, light: float = 0.04, noise: float = 5.0, seed: int = 0) -> np.ndarray:
    """A dark room: ``light`` of the light (linear, through the sRGB curve) and the sensor's
    noise (``noise`` grey levels), as a phone's picture of a dim room before any correction."""
    linear = (image.astype(np.float32) / 255.0) ** 2.2 * light
    out = linear ** (1 / 2.2) * 255.0 + np.random.default_rng(seed).normal(0.0, noise, image.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def rotate(image: np.ndarray, landmarks: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned by ``degrees`` (roll) about the face's centre, corners filled by
    reflection; and the landmarks turned with it."""
    centre = tuple(float(v) for v in landmarks.mean(axis=0))
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    out = cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return out, landmarks @ matrix[:, :2].T + matrix[:, 2]


def tile(
    image: np.ndarray,
    landmarks: np.ndarray,
    face_width: float,
    size: int | tuple[int, int] = 320,
    at: tuple[float, float] = (0.5, 0.5),
    fill: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` cut of ``image`` with the face ``face_width`` pixels wide (landmark extent)
    and its centre at ``at`` (fractions of the cut); and the landmarks in it. Beyond the
    image, the cut is filled by reflection (``fill=None``: a plausible background near the
    face), or with grey ``fill`` (where a reflection would repeat the face: a small face
    in a large picture, a face cut by the picture's edge)."""
    width, height = (size, size) if isinstance(size, int) else size
    box = face_box(landmarks)
    scale = face_width / float(box[2] - box[0])
    centre = (box[:2] + box[2:]) / 2
    matrix = np.array(
        [[scale, 0.0, at[0] * width - scale * centre[0]], [0.0, scale, at[1] * height - scale * centre[1]]]
    )
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    border = cv2.BORDER_REFLECT101 if fill is None else cv2.BORDER_CONSTANT
    out = cv2.warpAffine(image, matrix, (width, height), flags=interp, borderMode=border, borderValue=(fill or 0,) * 3)
    return out, landmarks * scale + matrix[:, 2]


def group(
    tiles: list[tuple[np.ndarray, np.ndarray]], columns: int | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Tiles of equal size side by side, in rows of ``columns``: one picture and every face's
    landmarks in it."""
    columns = columns or len(tiles)
    h, w = tiles[0][0].shape[:2]
    rows = -(-len(tiles) // columns)
    out = np.zeros((rows * h, columns * w, 3), np.uint8)
    faces = []
    for k, (image, landmarks) in enumerate(tiles):
        r, c = divmod(k, columns)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
        faces.append(landmarks + [c * w, r * h])
    return out, faces


def found(boxes: list[np.ndarray] | np.ndarray, landmarks: np.ndarray) -> bool:
    """Whether a detector found this face: a box whose centre lies inside the face's
    landmark extent and whose width is within a factor 2 of it (box conventions differ
    between detectors; a neighbour's face or a box around two faces does not count)."""
    truth = face_box(landmarks)
    width = truth[2] - truth[0]
    for box in boxes:
        box = np.asarray(box, float)
        cx, cy = (box[:2] + box[2:]) / 2
        if truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3] and 0.5 <= (box[2] - box[0]) / width <= 2.0:
            return True
    return False


def large_photo(
    image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int] = (8000, 6000), face_width: float = 45.0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A large photo (``size``: width, height; 48 megapixels by default, a phone's largest)
    with small faces in it: ``image`` stretched over the whole picture and darkened (a
    background with a huge, distorted face in it, which is not counted), and four copies
    of the face ``face_width`` pixels wide, in 256-px cuts: near the top-left corner, near
    the bottom-right one, and two across the picture's middle column, one of them at its
    centre (where a detector that searches large pictures in tiles cuts them). Returns the
    picture and the four small faces' landmarks."""
    width, height = size
    out = cv2.convertScaleAbs(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), alpha=0.6)
    faces = []
    for x, y in (
        (100, 100),
        (width - 400, height - 400),
        (width // 2 - 110, 200),
        (width // 2 - 128, height // 2 - 110),
    ):
        cut, points = tile(image, landmarks, face_width, 256, fill=90)
        out[y : y + 256, x : x + 256] = cut
        faces.append(points + [x, y])
    return out, faces
