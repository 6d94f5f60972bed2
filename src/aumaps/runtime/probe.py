"""Accuracy checks of an engine against the float32 reference, on faces made for the purpose.

A fast engine (bfloat16, int8) is only used where its intensities stay within a bound of the
float32 network's. The check needs realistic registered crops without a detector or a data
set: :func:`probe_crops` renders synthetic faces showing random AUs (:mod:`aumaps.data.synth`,
drawn from scratch, fixed seed), registered from their exact landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..aus import MAX_INTENSITY

__all__ = ["DEFAULT_MAX_ERROR", "PROBE_REVISION", "AccuracyReport", "compare", "intensities_of", "probe_crops"]

#: Which probe faces a stored accuracy check was made on (part of its key in the engine store):
#: 2 since the crops of models smaller than 256×256 are registered at their own size.
PROBE_REVISION = 2

#: The bound a fast engine must hold: largest |intensity - float32 intensity|.
DEFAULT_MAX_ERROR = 0.05


@lru_cache(maxsize=4)
def _probe_crops(n: int, seed: int, crop_size: int) -> np.ndarray:
    from .. import align
    from ..data import synth

    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        face = synth.procedural_face(rng)
        image, landmarks = synth.render(face, synth.sample_intensities(rng), rng)
        crops.append(align.warp_to_crop(image, align.registration_matrix(landmarks, crop_size=crop_size), crop_size))
    out = np.stack(crops)
    out.flags.writeable = False
    return out


def probe_crops(n: int = 8, seed: int = 0, crop_size: int = 256) -> np.ndarray:
    """``(n, S, S, 3)`` uint8 registered crops of synthetic faces with random AUs (read-only)."""
    return _probe_crops(int(n), int(seed), int(crop_size))


def intensities_of(maps: np.ndarray) -> np.ndarray:
    """``(N, A)`` intensities of ``(N, A, H, W)`` maps: each map's maximum clamped to [0, 5]."""
    maps = np.asarray(maps, dtype=np.float64)
    return np.clip(maps.reshape(*maps.shape[:2], -1).max(axis=-1), 0.0, MAX_INTENSITY)


@dataclass(frozen=True)
class AccuracyReport:
    """How far an engine's intensities are from float32's on ``n`` crops (× A AUs).

    Attributes:
        worst: largest absolute difference.
        mean: mean absolute difference.
        p99: 99th percentile of the absolute differences.
        n: crops compared.
        bound: the largest ``worst`` accepted.
    """

    worst: float
    mean: float
    p99: float
    n: int
    bound: float

    @property
    def accepted(self) -> bool:
        """Whether the engine holds the bound."""
        return self.worst <= self.bound

    def __str__(self) -> str:
        verdict = "within" if self.accepted else "beyond"
        return (
            f"|intensity - float32| on {self.n} crops: worst {self.worst:.4f}, mean {self.mean:.4f}, "
            f"99th percentile {self.p99:.4f} ({verdict} the bound {self.bound:g})"
        )

    def to_dict(self) -> dict:
        return {"worst": self.worst, "mean": self.mean, "p99": self.p99, "n": self.n, "bound": self.bound}


def compare(
    engine, reference, crops: np.ndarray, bound: float = DEFAULT_MAX_ERROR, batch_size: int = 8
) -> AccuracyReport:
    """Intensities of ``engine`` against ``reference`` (both ``crops -> maps`` callables)."""
    got, want = [], []
    for start in range(0, len(crops), batch_size):
        batch = np.ascontiguousarray(crops[start : start + batch_size])
        got.append(intensities_of(engine(batch)))
        want.append(intensities_of(reference(batch)))
    error = np.abs(np.concatenate(got) - np.concatenate(want))
    return AccuracyReport(
        float(error.max()), float(error.mean()), float(np.quantile(error, 0.99)), len(crops), float(bound)
    )
