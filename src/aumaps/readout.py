"""The readout: from the network's AU maps of registered crops to what is said about each face.

The one place where maps become results, for single images, video frames and the browser
app alike: the model's readout calibration (:mod:`aumaps.calibrate`), then the codec's
decoding (each map's maximum clamped to [0, 5] is the AU's intensity; its local maxima are
where it shows), carried back from the crop to the image through the
inverse of each face's registration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import align
from .codec import AUHeatmapCodec
from .results import FaceResult

__all__ = ["FaceInput", "read_faces"]


@dataclass
class FaceInput:
    """What is known of a face before the network: its id, box, the detector's raw score
    (NaN when the landmarks were given) and ``(68, 2)`` image landmarks; once registered
    (:meth:`aumaps.estimator.Estimator.register`), also the row's calibrated ``confidence``
    (:mod:`aumaps.confidence`) and the head ``pose`` (``(6,)``, :mod:`aumaps.pose`)."""

    face_id: int
    box: np.ndarray
    detector_score: float
    landmarks: np.ndarray
    confidence: float = field(default=float("nan"), kw_only=True)
    pose: np.ndarray | None = field(default=None, kw_only=True)


def read_faces(
    codec: AUHeatmapCodec,
    maps: np.ndarray,
    matrices: np.ndarray,
    crops: np.ndarray,
    faces: Sequence[FaceInput],
) -> list[FaceResult]:
    """One :class:`~aumaps.results.FaceResult` per face.

    Args:
        codec: calibrates and decodes the maps (its AU list is the maps' channel order).
        maps: ``(N, A, H, W)`` network output for the faces' crops; the results hold them
            calibrated (:meth:`~aumaps.codec.AUHeatmapCodec.calibrate`).
        matrices: ``(N, 2, 3)`` image→crop registrations.
        crops: ``(N, S, S, 3)`` the registered crops.
        faces: the N faces.
    """
    if len(faces) == 0:
        return []
    maps, decoded = codec.read(maps)
    inverse = align.invert(matrices)
    peaks = align.transform_points(decoded.peaks.reshape(len(faces), -1, 2), inverse).reshape(decoded.peaks.shape)
    argmax = align.transform_points(decoded.argmax, inverse)
    return [
        FaceResult(
            face_id=int(face.face_id),
            aus=codec.aus,
            intensities=decoded.intensities[k],
            heatmaps=np.asarray(maps[k]),
            peaks=peaks[k],
            argmax=argmax[k],
            landmarks=np.asarray(face.landmarks, dtype=np.float64),
            box=np.asarray(face.box, dtype=np.float64),
            confidence=float(face.confidence),
            detector_score=float(face.detector_score),
            pose=np.full(6, np.nan) if face.pose is None else np.asarray(face.pose, dtype=np.float64),
            matrix=matrices[k],
            crop=crops[k],
        )
        for k, face in enumerate(faces)
    ]
