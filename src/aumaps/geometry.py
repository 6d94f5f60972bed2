"""Measures of faces: boxes and landmark geometry, shared by detection, tracking, training
and evaluation.

Shapes: landmarks ``(..., 68, 2)`` ``x, y`` (iBUG-300W order, 0-indexed); boxes ``(4,)`` or
``(N, 4)`` ``x0, y0, x1, y1``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NUM_LANDMARKS", "bounding_box", "box_iou", "interocular_distance", "landmark_extent"]

#: Landmarks per face (iBUG-300W).
NUM_LANDMARKS = 68


def interocular_distance(landmarks: np.ndarray) -> float | np.ndarray:
    """Distance between the outer eye corners, landmarks 36 and 45.

    Args:
        landmarks: ``(..., 68, 2)`` ``x, y``.

    Returns:
        A float for one face, else an array of shape ``(...)``.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape[-2:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected landmarks of shape (..., 68, 2), got {landmarks.shape}")
    distance = np.linalg.norm(landmarks[..., 45, :] - landmarks[..., 36, :], axis=-1)
    return float(distance) if distance.ndim == 0 else distance


def landmark_extent(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre ``(2,)`` and size (mean side) of the bounding box of ``(68, 2)`` landmarks."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    return (low + high) / 2, float(np.mean(high - low))


def bounding_box(landmarks: np.ndarray) -> np.ndarray:
    """``(4,)`` ``x0, y0, x1, y1`` box around ``(68, 2)`` landmarks."""
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection over union of ``(N, 4)`` and ``(M, 4)`` ``x0, y0, x1, y1`` boxes."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
