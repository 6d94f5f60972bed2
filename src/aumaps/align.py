"""Face registration: the 3-point affine of the published model and its inverse.

Three landmarks — the chin tip (8) and the outer eye corners (36, 45) — are mapped onto fixed
points of a 256×256 crop (``method.md`` §1), with OpenCV's ``getAffineTransform`` and
``warpAffine`` defaults (bilinear, constant black border), exactly as the BMVC 2018 release
does. The inverse carries anything found in the crop (heatmap peaks, whole heatmaps) back onto
the original image.

Matrices are 2×3 float64 ``[A | t]`` acting on column vectors ``(x, y, 1)``; batched functions
accept ``(..., 2, 3)``.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "CROP_SIZE",
    "ANCHORS",
    "REFERENCE_POINTS",
    "TEMPLATE_68",
    "registration_matrix",
    "invert",
    "transform_points",
    "warp_to_crop",
    "warp_from_crop",
    "register_faces",
    "reference_points",
]

#: Side of the square registered crop, in pixels.
CROP_SIZE = 256
#: The landmarks that fix the registration: chin tip, outer corner of the image-left eye,
#: outer corner of the image-right eye.
ANCHORS = (8, 36, 45)
#: Where :data:`ANCHORS` land in the crop, (x, y), float32 as in the published release.
REFERENCE_POINTS = np.array([[127.6475, 227.8161], [79.1608, 87.0376], [176.8392, 87.0376]], dtype=np.float32)


#: A mean 68-point face in crop coordinates: dlib's landmarks on two public photos
#: (``skimage.data.astronaut()`` and matplotlib's ``grace_hopper.jpg``), registered and
#: averaged. Used where a plausible face layout is needed without an image (synthetic faces,
#: tests, the face drawn by ``--maps`` legends).
TEMPLATE_68 = np.array(
    [
        [55.7, 91.1],
        [57.1, 114.2],
        [59.8, 136.4],
        [62.5, 159.0],
        [69.3, 180.6],
        [79.3, 197.9],
        [93.6, 212.6],
        [109.0, 224.1],
        [127.6, 227.8],
        [146.0, 224.7],
        [163.5, 214.3],
        [179.0, 200.8],
        [190.8, 183.6],
        [199.1, 163.6],
        [202.9, 140.7],
        [205.5, 116.7],
        [207.8, 92.6],
        [63.5, 71.4],
        [71.9, 57.1],
        [85.0, 53.4],
        [98.8, 56.6],
        [111.3, 63.7],
        [143.4, 63.6],
        [156.2, 56.9],
        [170.5, 55.7],
        [184.2, 59.0],
        [192.9, 72.0],
        [126.9, 85.6],
        [127.2, 100.8],
        [127.5, 116.5],
        [127.4, 132.1],
        [109.9, 140.1],
        [118.3, 142.8],
        [127.2, 146.4],
        [135.8, 144.2],
        [144.0, 141.3],
        [79.2, 87.0],
        [86.9, 80.8],
        [97.1, 80.4],
        [106.1, 89.8],
        [96.7, 91.2],
        [86.1, 91.5],
        [149.6, 90.1],
        [158.6, 82.3],
        [168.3, 82.0],
        [176.8, 87.0],
        [169.1, 92.3],
        [159.3, 91.7],
        [93.9, 164.6],
        [105.4, 161.7],
        [117.6, 160.7],
        [125.3, 163.7],
        [133.9, 161.3],
        [146.8, 162.6],
        [160.6, 163.3],
        [147.3, 179.5],
        [135.2, 185.1],
        [125.4, 186.5],
        [116.9, 185.5],
        [105.0, 178.7],
        [98.8, 165.6],
        [117.1, 168.6],
        [125.7, 169.6],
        [134.2, 168.2],
        [156.2, 165.1],
        [134.5, 174.7],
        [126.3, 175.2],
        [117.4, 175.1],
    ]
)


def reference_points(crop_size: int = CROP_SIZE) -> np.ndarray:
    """Where :data:`ANCHORS` land in a ``crop_size`` crop: :data:`REFERENCE_POINTS` scaled
    (the same face framing at another resolution). ``(3, 2)`` float32."""
    if crop_size == CROP_SIZE:
        return REFERENCE_POINTS
    return (REFERENCE_POINTS * np.float32(crop_size / CROP_SIZE)).astype(np.float32)


def registration_matrix(
    landmarks: np.ndarray, reference: np.ndarray | None = None, crop_size: int = CROP_SIZE
) -> np.ndarray:
    """The affine that takes a face's landmarks 8, 36, 45 onto the crop's reference points.

    Args:
        landmarks: ``(68, 2)`` or ``(N, 68, 2)`` image coordinates.
        reference: ``(3, 2)`` target points; defaults to :func:`reference_points` of
            ``crop_size`` (:data:`REFERENCE_POINTS` for the published 256×256 crop).

    Returns:
        ``(2, 3)`` or ``(N, 2, 3)`` float64 image→crop matrices. For a single face this is
        ``cv2.getAffineTransform`` on float32 points, bit-for-bit what the release computes.

    Raises:
        ValueError: if the three anchors are (nearly) collinear, as from a degenerate fit.
    """
    lms = np.asarray(landmarks)
    if lms.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks must have shape (68, 2) or (N, 68, 2), got {lms.shape}")
    dst = reference_points(crop_size) if reference is None else np.asarray(reference, dtype=np.float32)
    src = np.ascontiguousarray(lms[..., list(ANCHORS), :], dtype=np.float32)
    flat = src.reshape(-1, 3, 2)
    u, v = flat[:, 1] - flat[:, 0], flat[:, 2] - flat[:, 0]
    area = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
    if np.any(~np.isfinite(flat)) or np.any(area < 1e-6):
        raise ValueError("cannot register a face whose landmarks 8, 36, 45 are collinear or not finite")
    mats = np.stack([cv2.getAffineTransform(s, dst) for s in flat]).astype(np.float64)
    return mats.reshape(lms.shape[:-2] + (2, 3))


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of ``(..., 2, 3)`` affine matrices (crop→image from image→crop)."""
    m = np.asarray(matrix, dtype=np.float64)
    a = m[..., :2]
    inv_a = np.linalg.inv(a)
    inv_t = -np.einsum("...ij,...j->...i", inv_a, m[..., 2])
    return np.concatenate([inv_a, inv_t[..., None]], axis=-1)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply ``(..., 2, 3)`` affines to ``(..., K, 2)`` points (NaN points stay NaN)."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return np.einsum("...ij,...kj->...ki", m[..., :2], p) + m[..., None, :, 2]


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The registered ``size``×``size`` crop of ``image`` (H×W×C) under an image→crop matrix."""
    return cv2.warpAffine(image, np.asarray(matrix, dtype=np.float64), (size, size))


def register_faces(
    image: np.ndarray, landmarks: np.ndarray, crop_size: int = CROP_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Register every face of one image whose landmarks allow it.

    Args:
        image: ``(H, W, 3)`` image.
        landmarks: ``(F, 68, 2)`` image landmarks of F faces.
        crop_size: side of the crops.

    Returns:
        kept: ``(K,)`` indices of the faces registered (those whose anchors are collinear or
        not finite are left out); matrices ``(K, 2, 3)``; crops ``(K, S, S, 3)``.
    """
    kept, matrices, crops = [], [], []
    for index, points in enumerate(np.asarray(landmarks, dtype=np.float64).reshape(-1, 68, 2)):
        try:
            matrix = registration_matrix(points, crop_size=crop_size)
        except ValueError:
            continue
        kept.append(index)
        matrices.append(matrix)
        crops.append(warp_to_crop(image, matrix, crop_size))
    channels = image.shape[2:] if image is not None else (3,)
    return (
        np.array(kept, dtype=np.int64),
        np.array(matrices, dtype=np.float64).reshape(-1, 2, 3),
        np.array(crops, dtype=np.uint8).reshape(-1, crop_size, crop_size, *channels),
    )


def warp_from_crop(
    crop_image: np.ndarray, matrix: np.ndarray, image_shape: tuple[int, int], crop_size: int = CROP_SIZE
) -> np.ndarray:
    """Carry a crop-frame array (crop, upsampled heatmap; H'×W'[×C]) back onto the image.

    ``matrix`` is the image→crop affine of a ``crop_size`` crop; if ``crop_image`` is not
    ``crop_size`` wide (a 64×64 heatmap), it is scaled accordingly. Pixels outside the crop
    come out as 0.
    """
    scale = crop_image.shape[1] / crop_size
    m = np.asarray(matrix, dtype=np.float64) * scale  # image -> array pixels
    h, w = image_shape[:2]
    return cv2.warpAffine(crop_image, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
