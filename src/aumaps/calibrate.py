"""Readout calibration: a gain and a soft threshold on a trained model's maps, fitted on
validation faces.

A heatmap network trained with an L2 loss regresses towards the mean where a face is
ambiguous: on held-out faces its maps come out too weak where an AU is strong (the peaks
of the bundled model read about 1.2–1.3 times too low) and a little too strong where there
is none (neutral faces read 0.2–1 on some AUs). Both cost agreement (ICC, MAE), and neither
changes which face shows an AU more. :class:`MapCalibration` corrects them with one
strictly increasing function applied to every map value::

    f(m) = gain · softplus(softness · (m − threshold)) / softness

(a soft ``max(0, gain · (m − threshold))``): values well above ``threshold`` are scaled by
``gain``, values below it shrink towards 0 but keep their order. Because ``f`` increases
strictly and is the same for every AU, it changes no ranking: which of two faces, frames or
AUs reads higher is what it was before (rank correlations, posed-photo comparisons), and the
maximum of a calibrated map is ``f`` of the maximum, so the intensity is still each map's
maximum clamped to [0, 5] and the map is still where the AU shows.

The parameters are fitted (:func:`fit_map_calibration`) on a validation split, never on the
faces a model is evaluated on, by a grid search for the highest mean ICC(3,1) over AUs (ties
go to the lower MAE); they travel in the checkpoint's codec (``codec["calibration"]``), so
every engine, the video pipeline, the browser app and ``aumaps evaluate`` apply them in the
one readout (:mod:`aumaps.readout`). ``aumaps calibrate``
(:func:`aumaps.evaluate.calibrate_checkpoint`) fits them for a checkpoint and writes them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .aus import MAX_INTENSITY
from .metrics import icc31

__all__ = ["GAINS", "SOFTNESS", "THRESHOLDS", "MapCalibration", "fit_map_calibration"]

#: Gains searched by :func:`fit_map_calibration`.
GAINS = tuple(np.round(np.arange(1.0, 2.0001, 0.05), 2))
#: Thresholds searched by :func:`fit_map_calibration` (map units = intensity units).
THRESHOLDS = tuple(np.round(np.arange(0.0, 1.0001, 0.05), 2))
#: Softness of the threshold (per intensity unit): f(0) = gain · ln(1 + e^(−5·threshold)) / 5.
SOFTNESS = 5.0
#: The most an empty map (a face without the AU) may read after calibration: a fit that would lift
#: every neutral face's AUs above it is not considered (threshold 0 at gain 1.25 reads 0.17).
MAX_AT_ZERO = 0.05


@dataclass(frozen=True)
class MapCalibration:
    """``f(m) = gain · softplus(softness · (m − threshold)) / softness``, applied to every map
    value (see the module docstring).

    Args:
        gain: slope well above the threshold (> 0).
        threshold: map value below which the output fades towards 0.
        softness: how sharp the fade is (> 0; larger is closer to a hard ``max(0, ·)``).
        fitted_on: where the parameters were fitted (free text, for the model card).
    """

    gain: float = 1.0
    threshold: float = 0.0
    softness: float = SOFTNESS
    fitted_on: str = ""

    def __post_init__(self) -> None:
        for name in ("gain", "threshold", "softness"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                raise ValueError(f"map calibration: {name} must be a finite number, got {value!r}")
        if self.gain <= 0 or self.softness <= 0:
            raise ValueError(f"map calibration: gain and softness must be > 0, got {self.gain} and {self.softness}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as stored in a checkpoint's codec."""
        return asdict(self)

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> MapCalibration:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        unknown = set(cfg) - {"gain", "threshold", "softness", "fitted_on"}
        if unknown:
            raise ValueError(f"map calibration: unknown field(s) {sorted(unknown)}")
        return cls(**cfg)

    def __call__(self, maps: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """``f`` of every value; NumPy in, float32 NumPy out; a tensor in, a float tensor out."""
        tensor = torch.as_tensor(maps).float()
        out = self.gain * F.softplus(tensor - self.threshold, beta=self.softness, threshold=20.0)
        return out if isinstance(maps, torch.Tensor) else out.numpy()

    def of_intensity(self, values: np.ndarray) -> np.ndarray:
        """``f`` of raw map maxima, clamped to [0, 5]: the calibrated intensities."""
        out = self(np.asarray(values, dtype=np.float32)).astype(np.float64)
        return np.clip(out, 0.0, MAX_INTENSITY)


def _scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """Mean ICC(3,1) over AUs (undefined ones left out) and MAE over coded labels
    (``icc31`` drops uncoded pairs itself)."""
    iccs = [v for a in range(true.shape[1]) if np.isfinite(v := icc31(pred[:, a], true[:, a]))]
    return (float(np.mean(iccs)) if iccs else float("nan"), float(np.nanmean(np.abs(pred - true))))


def fit_map_calibration(
    raw: np.ndarray,
    true: np.ndarray,
    gains: Sequence[float] = GAINS,
    thresholds: Sequence[float] = THRESHOLDS,
    softness: float = SOFTNESS,
    fitted_on: str = "",
    max_at_zero: float = MAX_AT_ZERO,
) -> tuple[MapCalibration, dict[str, float]]:
    """The (gain, threshold) of ``gains`` × ``thresholds`` with the highest mean ICC(3,1),
    among those that read an empty map as at most ``max_at_zero``.

    Args:
        raw: ``(N, A)`` uncalibrated intensities (each map's maximum, clamped to [0, 5]) of
            validation faces.
        true: ``(N, A)`` their labels (NaN = not coded).
        gains, thresholds: the grid. The uncalibrated readout's figures are returned as
            ``*_before`` (no point of the grid is exactly the identity).
        softness: the fade's sharpness, fixed.
        fitted_on: recorded in the result.
        max_at_zero: the most f(0) may be: ICC does not see a constant added to every reading,
            but a user sees a neutral face read above 0 for every AU.

    Returns:
        The calibration and ``{"icc_before", "mae_before", "icc_after", "mae_after", "n"}`` on
        the faces it was fitted on.

    Raises:
        ValueError: shapes differ, or no AU has labels that vary.
    """
    raw, true = np.asarray(raw, np.float64), np.asarray(true, np.float64)
    if raw.shape != true.shape or raw.ndim != 2:
        raise ValueError(f"fit_map_calibration: raw and true must both be (N, A), got {raw.shape} and {true.shape}")
    icc_before, mae_before = _scores(raw, true)
    if not np.isfinite(icc_before):
        raise ValueError("fit_map_calibration: no AU has varying labels to fit on")
    best_key, cal, (icc_after, mae_after) = None, None, (float("nan"), float("nan"))
    for gain, threshold in itertools.product(gains, thresholds):
        candidate = MapCalibration(float(gain), float(threshold), softness, fitted_on)
        if float(candidate.of_intensity(np.zeros(1))[0]) > max_at_zero:
            continue
        icc, mae = _scores(candidate.of_intensity(raw), true)
        key = (round(icc, 6), -round(mae, 6))  # higher ICC, then lower MAE
        if best_key is None or key > best_key:
            best_key, cal, icc_after, mae_after = key, candidate, icc, mae
    if cal is None:
        raise ValueError(
            f"fit_map_calibration: no gain and threshold of the grid reads an empty map at most {max_at_zero}"
        )
    stats = {
        "icc_before": icc_before,
        "mae_before": mae_before,
        "icc_after": icc_after,
        "mae_after": mae_after,
        "n": int(len(raw)),
    }
    return cal, stats
